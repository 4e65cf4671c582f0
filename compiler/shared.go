package compiler

// Shared definitions: a directory compiled together with what others
// declare in the same executor group (another directory, a Terraform
// workspace), so that it may place its mirrors and tables on datacenters,
// shards and tiers it does not own.

import (
	"encoding/json"
	"path/filepath"

	"cuelang.org/go/cue"

	"github.com/ferry-pipelines/ferry/schema"
)

// sharedFile is the name the shared definitions take inside the loaded
// directory.
const sharedFile = "zz_ferry_shared.cue"

// WithShared gives the definitions others declare (GET /v1/definitions of
// the executor group, or a file saved from it): the directory may use
// their datacenters, shards, tiers and settings, and is checked together
// with their mirrors and CDC sources. An object the directory declares
// replaces theirs; so do its settings and its list of groups, whole. CompileDir then returns the plan of the
// whole and the definitions the directory declares. Default: none.
func WithShared(defs *schema.Definitions) Option { return func(o *options) { o.shared = defs } }

// declaredNames are the names a loaded directory declares, by section (the
// settings sections and groups by their own name when present).
func (s *source) declaredNames() map[string]map[string]bool {
	out := map[string]map[string]bool{"groups": {}}
	if s.value.LookupPath(cue.ParsePath("groups")).Exists() {
		out["groups"]["groups"] = true
	}
	for _, sec := range sections {
		out[sec] = map[string]bool{}
		v := s.value.LookupPath(cue.ParsePath(sec))
		if !v.Exists() {
			continue
		}
		if settings[sec] {
			out[sec][sec] = true
			continue
		}
		if it, err := v.Fields(); err == nil {
			for it.Next() {
				out[sec][it.Selector().Unquoted()] = true
			}
		}
	}
	return out
}

// withShared loads the directory again with the shared objects it does not
// declare itself (own).
func (s *source) withShared(shared *schema.Definitions, own map[string]map[string]bool) (*source, Errors) {
	rest := schema.Definitions{
		Datacenters: without(shared.Datacenters, own["datacenters"]),
		Shards:      without(shared.Shards, own["shards"]),
		Tiers:       without(shared.Tiers, own["tiers"]),
		Mirrors:     without(shared.Mirrors, own["mirrors"]),
		CDC:         without(shared.CDC, own["cdc"]),
	}
	// Settings and the list of groups are the directory's when it has
	// them, else the others'.
	if !own["metrics"]["metrics"] {
		rest.Metrics = shared.Metrics
	}
	if !own["alerts"]["alerts"] {
		rest.Alerts = shared.Alerts
	}
	if !own["groups"]["groups"] {
		rest.Groups = shared.Groups
	}
	if rest.Datacenters == nil {
		rest.Datacenters = map[string]schema.Datacenter{}
	}
	b, err := json.Marshal(rest)
	if err != nil {
		return nil, Errors{{Msg: err.Error()}}
	}
	return loadOverlay(s.dir, map[string][]byte{filepath.Join(s.dir, sharedFile): append([]byte("package pipelines\n"), b...)})
}

// ownOnly keeps of defs the objects own names.
func ownOnly(defs *schema.Definitions, own map[string]map[string]bool) *schema.Definitions {
	out := *defs
	out.Datacenters = only(defs.Datacenters, own["datacenters"])
	out.Shards = only(defs.Shards, own["shards"])
	out.Tiers = only(defs.Tiers, own["tiers"])
	out.Mirrors = only(defs.Mirrors, own["mirrors"])
	out.CDC = only(defs.CDC, own["cdc"])
	if !own["metrics"]["metrics"] {
		out.Metrics = nil
	}
	if !own["alerts"]["alerts"] {
		out.Alerts = nil
	}
	if !own["groups"]["groups"] {
		out.Groups = nil
	}
	return &out
}

func without[T any](m map[string]T, names map[string]bool) map[string]T {
	return filter(m, func(name string) bool { return !names[name] })
}

func only[T any](m map[string]T, names map[string]bool) map[string]T {
	return filter(m, func(name string) bool { return names[name] })
}

func filter[T any](m map[string]T, keep func(string) bool) map[string]T {
	var out map[string]T
	for k, v := range m {
		if keep(k) {
			if out == nil {
				out = map[string]T{}
			}
			out[k] = v
		}
	}
	return out
}
