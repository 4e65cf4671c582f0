package compiler

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"

	"github.com/ferry-pipelines/ferry/schema"
)

// sections are the top-level fields of a definition set; each holds named
// objects except the settings sections.
var sections = []string{"datacenters", "shards", "tiers", "mirrors", "cdc", "metrics", "alerts"}

// settings are the sections that hold settings rather than named objects.
var settings = map[string]bool{"metrics": true, "alerts": true}

// topLevel are all the top-level fields: the sections and groups, a list.
var topLevel = append(append([]string(nil), sections...), "groups")

// validate is the second stage: it collects every schema problem. A valid
// set costs one CUE validation; only an invalid one is searched object by
// object, because CUE stops reporting missing fields once it has found a
// conflict.
func (s *source) validate() Errors {
	errs := s.unknownTopLevel()
	if err := s.value.Validate(cue.Concrete(true), cue.All()); err == nil {
		return errs
	}
	errs = append(errs, s.convert(s.value.Validate(cue.All()))...)
	errs = append(errs, s.missing(cue.Path{}, s.value)...)
	errs = append(errs, s.badKeys()...)
	for _, sec := range sections {
		sv := s.value.LookupPath(cue.ParsePath(sec))
		if !sv.Exists() {
			continue
		}
		// CUE may stop at a section's first bad object; asking each section
		// and each object on its own finds the rest.
		errs = append(errs, s.convert(sv.Validate(cue.All()))...)
		if settings[sec] {
			errs = append(errs, s.convert(sv.Validate(cue.Concrete(true), cue.All()))...)
			continue
		}
		it, err := sv.Fields()
		if err != nil {
			continue // reported by the whole-value validation above
		}
		for it.Next() {
			errs = append(errs, s.convert(it.Value().Validate(cue.Concrete(true), cue.All()))...)
		}
	}
	return errs
}

// badKeys reports object names that their section's pattern does not
// allow. CUE reports these only while the section has no other error, so
// the error path asks the schema about each key.
func (s *source) badKeys() Errors {
	sch := s.value.Context().CompileBytes(schema.CUE)
	var errs Errors
	check := func(section cue.Path, allowed cue.Value) {
		it, err := s.value.LookupPath(section).Fields()
		if err != nil {
			return
		}
		for it.Next() {
			if !allowed.Allows(it.Selector()) {
				p := selectorsString(append(section.Selectors(), it.Selector()))
				errs = append(errs, &Error{Pos: s.pos(parsePath(p)), Path: p, Msg: s.notAllowed(p)})
			}
		}
	}
	for _, sec := range sections {
		if !settings[sec] {
			check(cue.ParsePath(sec), sch.LookupPath(cue.MakePath(cue.Str(sec).Optional())))
		}
	}
	tables := sch.LookupPath(cue.MakePath(cue.Def("#CDCSource"), cue.Str("tables").Required()))
	if it, err := s.value.LookupPath(cue.ParsePath("cdc")).Fields(); err == nil {
		for it.Next() {
			check(cue.MakePath(cue.Str("cdc"), it.Selector(), cue.Str("tables")), tables)
		}
	}
	return errs
}

// unknownTopLevel reports top-level fields the language does not have. CUE
// cannot close a package, so this check is ferry's.
func (s *source) unknownTopLevel() Errors {
	it, err := s.value.Fields()
	if err != nil {
		return nil
	}
	var errs Errors
	for it.Next() {
		name := it.Selector().String()
		if !contains(topLevel, name) {
			errs = append(errs, &Error{
				Pos:  s.pos(cue.MakePath(it.Selector())),
				Path: name,
				Msg:  "unknown top-level field (allowed: " + strings.Join(topLevel, ", ") + ")",
			})
		}
	}
	return errs
}

// missing walks v and reports each required field (name!) the user left out.
func (s *source) missing(path cue.Path, v cue.Value) Errors {
	if v.IncompleteKind()&cue.StructKind == 0 {
		return nil
	}
	it, err := v.Fields(cue.Optional(true))
	if err != nil {
		return nil
	}
	var errs Errors
	for it.Next() {
		sel := it.Selector()
		if sel.ConstraintType() == cue.RequiredConstraint {
			// Worded as CUE's own report of the same field, so the two
			// stages' reports of one problem merge into one line.
			field := cue.MakePath(append(path.Selectors(), cue.Str(sel.Unquoted()))...)
			errs = append(errs, &Error{Pos: s.pos(path), Path: selectorsString(field.Selectors()), Msg: "missing required field"})
			continue
		}
		if sel.ConstraintType() == cue.OptionalConstraint {
			continue
		}
		errs = append(errs, s.missing(cue.MakePath(append(path.Selectors(), sel)...), it.Value())...)
	}
	return errs
}

// reword turns the CUE errors reported at one path into ferry's messages.
func (s *source) reword(path string, group []cueerrors.Error) Errors {
	var (
		errs    Errors
		choices []string // the alternatives of an empty disjunction
		got     string
		pos     token.Pos
	)
	for _, e := range group {
		format, args := e.Msg()
		p := s.userPos(e)
		switch {
		case strings.Contains(format, "errors in empty disjunction"):
			continue
		case format == "conflicting values %s and %s" && len(args) == 2 && hasDisjunction(group):
			// A disjunction's branch: one side is the user's value.
			a, b := fmt.Sprint(args[0]), fmt.Sprint(args[1])
			choices = append(choices, a)
			got, pos = b, p
			continue
		case format == "conflicting values %s and %s" && len(args) == 2:
			// Two of the user's own values for one field.
			errs = append(errs, s.errorAt(path, p, fmt.Sprintf("conflicting values %v and %v%s: give the field one value", args[0], args[1], s.otherPlaces(e, p))))
			continue
		case strings.HasPrefix(format, "conflicting values %s and %s (mismatched types") && len(group) > 1 && hasDisjunction(group):
			a, b := fmt.Sprint(args[0]), fmt.Sprint(args[1])
			choices = append(choices, b)
			got, pos = a, p
			continue
		}
		msg := friendly(path, format, args)
		if format == "field not allowed" {
			if secret := parentPath(path); strings.HasSuffix(secret, ".password") {
				// The two branches of #Secret each refuse the other's
				// field; one line says what a secret is.
				errs = append(errs, s.errorAt(secret, p, `a secret is either {env: "NAME"} or {file: "/path"}, nothing else`))
				continue
			}
			msg = s.notAllowed(path)
		}
		errs = append(errs, s.errorAt(path, p, msg))
	}
	if len(choices) > 0 {
		errs = append(errs, s.errorAt(path, pos, choiceMessage(got, choices)))
	}
	return errs
}

func hasDisjunction(group []cueerrors.Error) bool {
	for _, e := range group {
		if f, _ := e.Msg(); strings.Contains(f, "errors in empty disjunction") {
			return true
		}
	}
	return false
}

// otherPlaces lists the positions of e in the user's files other than the
// one the error is reported at, as " (also set at file:line:col)".
func (s *source) otherPlaces(e cueerrors.Error, at token.Pos) string {
	var places []string
	for _, p := range cueerrors.Positions(e) {
		if p.Filename() != s.schemaPath && p != at && p.IsValid() && !s.virtual {
			places = append(places, fmt.Sprintf("%s:%d:%d", relative(p.Filename()), p.Line(), p.Column()))
		}
	}
	if len(places) == 0 {
		return ""
	}
	return " (also set at " + strings.Join(places, ", ") + ")"
}

// errorAt builds an error at pos, or, when CUE named no position in the
// user's files (a missing field, say), at the nearest enclosing field.
func (s *source) errorAt(path string, pos token.Pos, msg string) *Error {
	if !pos.IsValid() {
		pos = s.pos(parsePath(path))
	}
	return &Error{Pos: pos, Path: path, Msg: msg}
}

// choiceMessage words a value that matched none of a disjunction's choices.
func choiceMessage(got string, choices []string) string {
	sort.Strings(choices)
	if strings.HasPrefix(choices[0], "{env") || strings.HasPrefix(choices[len(choices)-1], "{file") {
		return fmt.Sprintf("invalid value %s: secrets are references, {env: \"NAME\"} or {file: \"/path\"}, never literals", got)
	}
	return fmt.Sprintf("invalid value %s (want %s)", got, strings.Join(choices, ", "))
}

// boundNames names the schema's patterns in messages, so users read "a
// duration" rather than a regular expression.
var boundNames = map[string]string{
	`=~"^[a-z][a-z0-9_]*$"`:                          `a lowercase name such as "dc1": letters, digits, "_"`,
	`=~"^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"`: `a duration such as "300ms", "10s" or "1h"`,
	`=~"^[a-zA-Z0-9._-]{1,249}$"`:                    `a Kafka topic name: letters, digits, ".", "_", "-", at most 249`,
	`=~"^.+:[0-9]{1,5}$"`:                            `an address "host:port"`,
	`=~"^[A-Za-z_][A-Za-z0-9_]*$"`:                   `an environment variable name`,
	`=~"^[a-zA-Z0-9_-]+$"`:                           `a name of letters, digits, "_" and "-"`,
	`=~"^[^.]+\\.[^.]+$"`:                            `"database.table"`,
	`=~"^[^.\\s]+\\.[^.\\s]+$"`:                      `"schema.table"`,
	`=~"^[^\\s]+$"`:                                  `a column name without spaces`,
}

// tierField matches the paths whose values are tiers: a mirror's or a
// table's tier and the elements of a shard's tiers.
var tierField = regexp.MustCompile(`(^|\.)tier$|(^|\.)tiers\.[0-9]+$`)

// boundOp splits a CUE bound such as ">=1" into operator and limit.
var boundOp = regexp.MustCompile(`^(<=|>=|<|>|!=)(.+)$`)

// friendly rewords one CUE message.
func friendly(path, format string, args []interface{}) string {
	switch format {
	case "field is required but not present":
		return "missing required field"
	case "field not allowed":
		return "unknown field"
	case "invalid value %v (out of bound %s)":
		if len(args) != 2 {
			break
		}
		bound := fmt.Sprint(args[1])
		if tierField.MatchString(path) && (bound == "<=4" || bound == ">=1") {
			return fmt.Sprintf("invalid tier %v (tiers are 1 to 4)", args[0])
		}
		if name, ok := boundNames[bound]; ok {
			return fmt.Sprintf("invalid value %v (want %s)", args[0], name)
		}
		if m := boundOp.FindStringSubmatch(bound); m != nil {
			return fmt.Sprintf("invalid value %v (want %s %s)", args[0], m[1], m[2])
		}
	case "conflicting values %s and %s (mismatched types %s and %s)":
		if len(args) != 4 {
			break
		}
		got, gotKind, want := args[0], args[2], args[3]
		if isSchemaSide(fmt.Sprint(got)) {
			got, gotKind, want = args[1], args[3], args[2]
		}
		return fmt.Sprintf("invalid value %v (want %s, not %s)", got, article(fmt.Sprint(want)), article(fmt.Sprint(gotKind)))
	case "incompatible list lengths (%d and %d)":
		if len(args) == 2 && fmt.Sprint(args[0]) == "0" {
			return "empty list (want at least one element)"
		}
	case "incomplete value %v":
		return fmt.Sprintf("needs a concrete value, not %v", args...)
	}
	return fmt.Sprintf(format, args...)
}

// isSchemaSide reports whether a value printed in a CUE type conflict is
// the schema's constraint rather than the user's value: a bare kind (null
// is a value, not a kind), or an
// expression with definitions, required fields or open lists.
func isSchemaSide(v string) bool {
	switch v {
	case "int", "float", "number", "string", "bytes", "bool", "struct", "list":
		return true
	}
	return strings.Contains(v, "#") || strings.Contains(v, "!:") || strings.Contains(v, "...")
}

// article puts "a" or "an" before a CUE kind: "an int", "a list".
func article(kind string) string {
	if strings.ContainsRune("aeiou", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}

// pos finds the position of the field at path in the user's files: the
// field's label where the user wrote one, else that of the nearest
// enclosing field, else the first file.
func (s *source) pos(path cue.Path) token.Pos {
	if s.virtual {
		return token.NoPos
	}
	sels := path.Selectors()
	for n := len(sels); n >= 0; n-- {
		v := s.value.LookupPath(cue.MakePath(sels[:n]...))
		if !v.Exists() {
			continue
		}
		_, args := v.Expr()
		for _, a := range append(args, v) {
			if p := a.Pos(); p.IsValid() && p.Filename() != s.schemaPath {
				return p
			}
		}
	}
	return token.NoPos
}

// notAllowed words a field the schema does not have, listing the fields it
// does; where the parent is a map, the key did not match its pattern.
func (s *source) notAllowed(path string) string {
	sels := parsePath(path).Selectors()
	if len(sels) == 0 {
		return "unknown field"
	}
	parentPath := cue.MakePath(sels[:len(sels)-1]...)
	if msg := badName(selectorsString(parentPath.Selectors())); msg != "" {
		return msg
	}
	it, err := s.value.LookupPath(parentPath).Fields(cue.Optional(true))
	if err != nil {
		return "unknown field"
	}
	bad := sels[len(sels)-1].Unquoted()
	var allowed []string
	for it.Next() {
		if name := it.Selector().Unquoted(); name != bad {
			allowed = append(allowed, name)
		}
	}
	sort.Strings(allowed)
	return "unknown field (allowed: " + strings.Join(allowed, ", ") + ")"
}

// badName words a key that the pattern of the map at parent refuses; ""
// when parent is not a map of names.
func badName(parent string) string {
	switch parent {
	case "datacenters", "shards":
		return `invalid name (want a lowercase name such as "dc1": letters, digits, "_")`
	case "tiers":
		return "unknown tier (tiers are \"1\" to \"4\")"
	case "mirrors":
		return `invalid topic name (want letters, digits, ".", "_", "-")`
	case "cdc":
		return `invalid source name (want letters, digits, "_", "-")`
	}
	if strings.HasSuffix(parent, ".tables") {
		return `invalid table name (want "database.table")`
	}
	return ""
}

// parsePath reads a path as messages print it. CUE's path parser refuses
// some labels CUE prints, such as "", so a path it refuses is read here:
// identifiers and quoted labels between dots.
func parsePath(path string) cue.Path {
	if p := cue.ParsePath(path); p.Err() == nil {
		return p
	}
	var sels []cue.Selector
	for rest := path; rest != ""; rest = strings.TrimPrefix(rest, ".") {
		end := strings.IndexByte(rest, '.')
		if rest[0] == '"' {
			end = 1
			for end < len(rest) && rest[end] != '"' {
				if rest[end] == '\\' {
					end++
				}
				end++
			}
			end = min(end+1, len(rest))
		}
		if end < 0 {
			end = len(rest)
		}
		label := rest[:end]
		if unq, err := strconv.Unquote(label); err == nil {
			label = unq
		}
		sels = append(sels, cue.Str(label))
		rest = rest[end:]
	}
	return cue.MakePath(sels...)
}

// parentPath drops the last selector of a path.
func parentPath(path string) string {
	sels := parsePath(path).Selectors()
	if len(sels) == 0 {
		return ""
	}
	return selectorsString(sels[:len(sels)-1])
}

// pathString prints a CUE error path the way users write it.
func pathString(sels []string) string {
	return strings.Join(sels, ".")
}

func selectorsString(sels []cue.Selector) string {
	parts := make([]string, len(sels))
	for i, s := range sels {
		parts[i] = s.String()
	}
	return strings.Join(parts, ".")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
