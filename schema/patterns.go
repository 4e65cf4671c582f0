package schema

import (
	"fmt"
	"strings"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
)

var compiled = sync.OnceValue(func() cue.Value { return cuecontext.New().CompileBytes(CUE) })

// Pattern is the regular expression of a definition of the schema that
// constrains a string with =~ (#Name, #Topic, #TableName, ...), so that
// other checkers (the Terraform provider) use the very pattern the
// compiler does. It panics on a definition that is not one: a programming
// error.
func Pattern(def string) string {
	v := lookup(def)
	if op, args := v.Expr(); op == cue.RegexMatchOp && len(args) == 1 {
		if s, err := args[0].String(); err == nil {
			return s
		}
	}
	panic(fmt.Sprintf("schema: %s is not a pattern (=~) definition", def))
}

// Bounds are the least and greatest values the schema allows an integer
// field at path ("#Mirror.partitions", "#Tier"); hi 0: no upper bound.
// It panics on a path that is not a bounded integer: a programming error.
func Bounds(path string) (lo, hi int64) {
	found := false
	for _, c := range conjuncts(lookup(path)) {
		op, xs := c.Expr()
		if len(xs) != 1 {
			continue
		}
		n, err := xs[0].Int64()
		if err != nil {
			continue
		}
		switch op {
		case cue.GreaterThanOp:
			lo, found = n+1, true
		case cue.GreaterThanEqualOp:
			lo, found = n, true
		case cue.LessThanOp:
			hi, found = n-1, true
		case cue.LessThanEqualOp:
			hi, found = n, true
		}
	}
	if !found {
		panic(fmt.Sprintf("schema: %s is not a bounded integer", path))
	}
	return lo, hi
}

// lookup finds a definition or a field of one ("#CDCSource.mysql.serverID"),
// whether the fields are regular, required (!) or optional (?).
func lookup(path string) cue.Value {
	parts := strings.Split(path, ".")
	v := compiled().LookupPath(cue.MakePath(cue.Def(parts[0])))
	for _, name := range parts[1:] {
		sel := cue.Str(name)
		for _, s := range []cue.Selector{sel, sel.Required(), sel.Optional()} {
			if w := v.LookupPath(cue.MakePath(s)); w.Exists() {
				v = w
				break
			}
		}
	}
	return v
}

// conjuncts flattens a & b & c into its parts.
func conjuncts(v cue.Value) []cue.Value {
	op, args := v.Expr()
	if op != cue.AndOp {
		return []cue.Value{v}
	}
	var out []cue.Value
	for _, a := range args {
		out = append(out, conjuncts(a)...)
	}
	return out
}
