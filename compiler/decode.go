package compiler

import (
	"reflect"
	"strings"

	"cuelang.org/go/cue"

	"github.com/ferry-pipelines/ferry/schema"
)

// decoded is the third stage's result: the objects that passed the schema,
// as Go values, and the names of every declared object, valid or not, so
// that a reference to an object with its own schema error is not reported a
// second time as a reference to an unknown one.
type decoded struct {
	defs     schema.Definitions
	declared map[string]map[string]bool // section -> object name
}

// decode is the third stage. A valid set decodes in one pass; after schema
// errors each object decodes on its own and those with errors are left out.
func (s *source) decode(schemaErrs Errors) *decoded {
	d := &decoded{declared: map[string]map[string]bool{}}
	if len(schemaErrs) == 0 && decodeValue(s.value, reflect.ValueOf(&d.defs).Elem()) == nil {
		// Valid: every declared object decoded.
		d.declared["datacenters"] = keySet(d.defs.Datacenters)
		d.declared["shards"] = keySet(d.defs.Shards)
		d.declared["tiers"] = keySet(d.defs.Tiers)
		d.declared["mirrors"] = keySet(d.defs.Mirrors)
		d.declared["cdc"] = keySet(d.defs.CDC)
		return d
	}
	d.defs = schema.Definitions{}
	for _, sec := range sections {
		d.declared[sec] = map[string]bool{}
		if it, err := s.value.LookupPath(cue.ParsePath(sec)).Fields(); err == nil {
			for it.Next() {
				d.declared[sec][it.Selector().Unquoted()] = true
			}
		}
	}
	bad := map[string]bool{}
	for _, e := range schemaErrs {
		bad[objectOf(e.Path)] = true
	}
	d.defs = schema.Definitions{
		Datacenters: decodeSection[schema.Datacenter](s, "datacenters", bad),
		Shards:      decodeSection[schema.Shard](s, "shards", bad),
		Tiers:       decodeSection[schema.TierSettings](s, "tiers", bad),
		Mirrors:     decodeSection[schema.Mirror](s, "mirrors", bad),
		CDC:         decodeSection[schema.CDCSource](s, "cdc", bad),
	}
	if m := s.value.LookupPath(cue.ParsePath("metrics")); m.Exists() && !bad["metrics"] {
		var metrics schema.Metrics
		if m.Decode(&metrics) == nil {
			d.defs.Metrics = &metrics
		}
	}
	if a := s.value.LookupPath(cue.ParsePath("alerts")); a.Exists() && !bad["alerts"] {
		var alerts schema.Alerts
		if a.Decode(&alerts) == nil {
			d.defs.Alerts = &alerts
		}
	}
	for i := 0; ; i++ { // one by one: a bad pattern is left empty, the others keep their indices
		v := s.value.LookupPath(cue.MakePath(cue.Str("groups"), cue.Index(i)))
		if !v.Exists() {
			break
		}
		var pattern string
		_ = v.Decode(&pattern)
		d.defs.Groups = append(d.defs.Groups, pattern)
	}
	return d
}

func keySet[T any](m map[string]T) map[string]bool {
	set := make(map[string]bool, len(m))
	for k := range m {
		set[k] = true
	}
	return set
}

// decodeSection decodes the objects of one section that have no errors.
func decodeSection[T any](s *source, sec string, bad map[string]bool) map[string]T {
	out := map[string]T{}
	it, err := s.value.LookupPath(cue.ParsePath(sec)).Fields()
	if err != nil {
		return out
	}
	for it.Next() {
		if bad[sec+"."+it.Selector().String()] || bad[sec] {
			continue
		}
		var obj T
		if it.Value().Decode(&obj) == nil {
			out[it.Selector().Unquoted()] = obj
		}
	}
	return out
}

// objectOf returns the object an error path belongs to: its first two
// selectors, such as mirrors."orders.events".
func objectOf(path string) string {
	sels := parsePath(path).Selectors()
	if len(sels) > 2 {
		sels = sels[:2]
	}
	return selectorsString(sels)
}

// label quotes a map key the way CUE paths print it.
func label(name string) string {
	return cue.MakePath(cue.Str(name)).String()
}

// path joins selectors into a CUE path string, quoting keys that need it.
func path(section string, keys ...string) string {
	var b strings.Builder
	b.WriteString(section)
	for _, k := range keys {
		b.WriteByte('.')
		b.WriteString(label(k))
	}
	return b.String()
}
