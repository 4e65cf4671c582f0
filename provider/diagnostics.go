package provider

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

// The compiler names each problem by its path in the definitions
// (`mirrors."audit.log".shard: ...`); a problem of the object a resource
// writes is shown on the attribute it names, as Terraform shows its own
// checks, rather than on the whole resource block.

var cueIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// cueLabel writes a label as the compiler's paths do: quoted unless it is
// an identifier.
func cueLabel(s string) string {
	if cueIdent.MatchString(s) {
		return s
	}
	return strconv.Quote(s)
}

// objectPrefix is the path prefix of an object's fields in the compiler's
// problems.
func objectPrefix(kind api.Kind, name string) string {
	switch kind {
	case api.Datacenter:
		return "datacenters." + cueLabel(name) + "."
	case api.Shard:
		return "shards." + cueLabel(name) + "."
	case api.Mirror:
		return "mirrors." + cueLabel(name) + "."
	case api.CDCSource:
		return "cdc." + cueLabel(name) + "."
	case api.CDCTable:
		src, table, _ := strings.Cut(name, "/")
		return "cdc." + cueLabel(src) + ".tables." + cueLabel(table) + "."
	}
	return ""
}

// attributeOf returns the attribute of attrs that the first of err's
// problems about the object names, if there is one.
func attributeOf(attrs map[string]schema.Attribute, kind api.Kind, name string, err error) (path.Path, bool) {
	e, ok := err.(*api.Error)
	if !ok {
		return path.Empty(), false
	}
	prefix := objectPrefix(kind, name)
	for _, problem := range e.Problems {
		field, _, ok := strings.Cut(problem, ": ")
		if !ok || !strings.HasPrefix(field, prefix) {
			continue
		}
		rest := strings.TrimPrefix(field, prefix)
		if kind == api.CDCSource && strings.HasPrefix(rest, "tables.") {
			continue // a table's, not the source's
		}
		if p, ok := resolve(attrs, strings.Split(rest, ".")); ok {
			return p, true
		}
	}
	return path.Empty(), false
}

// resolve walks the schema along a problem's field names (camelCase in the
// language, snake_case here). A name the resource flattens away (a
// datacenter's kafka) is skipped.
func resolve(attrs map[string]schema.Attribute, names []string) (path.Path, bool) {
	var p path.Path
	found := false
	for i, n := range names {
		if idx, err := strconv.Atoi(n); err == nil && found {
			p = p.AtListIndex(idx)
			continue
		}
		a, ok := attrs[snake(n)]
		if !ok {
			if !found && i == 0 {
				continue
			}
			break
		}
		if found {
			p = p.AtName(snake(n))
		} else {
			p, found = path.Root(snake(n)), true
		}
		nested, ok := a.(schema.SingleNestedAttribute)
		if !ok {
			break
		}
		attrs = nested.Attributes
	}
	return p, found
}

// snake turns a language field name into its attribute name: serverID is
// server_id, topicPrefix topic_prefix.
func snake(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 && (unicode.IsLower(r[i-1]) || i+1 < len(r) && unicode.IsLower(r[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
