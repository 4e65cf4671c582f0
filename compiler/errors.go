package compiler

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"cuelang.org/go/cue/token"
)

// Error is one problem in a definition set, at the position of the
// offending field.
type Error struct {
	Pos  token.Pos
	Path string // CUE path of the field, such as mirrors."orders.events".shard
	Msg  string
}

// Error formats the problem as "file:line:col: path: message", with the file
// relative to the working directory.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Pos.IsValid() {
		fmt.Fprintf(&b, "%s:%d:%d: ", relative(e.Pos.Filename()), e.Pos.Line(), e.Pos.Column())
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found, sorted by position.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sort orders the problems by file, line and column, then path and message,
// and drops repeats: the same message at the same path, found by two
// stages.
func (es Errors) sort() Errors {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.Pos.Filename() != b.Pos.Filename() {
			return a.Pos.Filename() < b.Pos.Filename()
		}
		if a.Pos.Line() != b.Pos.Line() {
			return a.Pos.Line() < b.Pos.Line()
		}
		if a.Pos.Column() != b.Pos.Column() {
			return a.Pos.Column() < b.Pos.Column()
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Msg < b.Msg
	})
	seen := map[string]bool{}
	out := es[:0]
	for _, e := range es {
		key := e.Path + "\x00" + e.Msg
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, e)
	}
	return out
}

// relative shortens an absolute file name to one relative to the working
// directory, the way compilers print positions.
func relative(name string) string {
	if !filepath.IsAbs(name) {
		return name
	}
	wd, err := os.Getwd()
	if err != nil {
		return name
	}
	if rel, err := filepath.Rel(wd, name); err == nil {
		return rel
	}
	return name
}
