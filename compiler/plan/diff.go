package plan

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/google/go-cmp/cmp"
)

// Diff is what changed between two plans, for reviewers (Text) and for
// tools (JSON). Its JSON shape is stable: fields are only ever added.
type Diff struct {
	Added    []JobSummary  `json:"added"`
	Removed  []JobSummary  `json:"removed"`
	Changed  []JobChange   `json:"changed"`
	Moved    []JobMove     `json:"moved"`
	Settings []FieldChange `json:"settings"`
	// Outputs are what ferry writes from the plan besides it (its alert
	// rules, its dashboard) that change with it; ferry plan fills them in.
	Outputs []OutputChange `json:"outputs"`
}

// OutputChange is a file ferry writes from the plan that changes: the
// names of its parts (alerts, recording rules, panels) added, removed and
// changed.
type OutputChange struct {
	Output  string   `json:"output"` // "alerts", "dashboard"
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Changed []string `json:"changed"`
}

// JobSummary identifies an added or removed job.
type JobSummary struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Shard string `json:"shard"`
	Tier  int    `json:"tier"`
}

// JobChange lists the fields of a job that changed, other than its shard.
type JobChange struct {
	ID      string        `json:"id"`
	Changes []FieldChange `json:"changes"`
}

// JobMove is a job placed on another shard.
type JobMove struct {
	ID   string `json:"id"`
	From string `json:"from"`
	To   string `json:"to"`
}

// FieldChange is one changed field, its path in the plan's JSON names and
// its values as JSON (null where the field is new or gone).
type FieldChange struct {
	Field string          `json:"field"`
	Old   json.RawMessage `json:"old"`
	New   json.RawMessage `json:"new"`
}

// Empty reports whether the plans are equivalent.
func (d *Diff) Empty() bool {
	return len(d.Added)+len(d.Removed)+len(d.Changed)+len(d.Moved)+len(d.Settings)+len(d.Outputs) == 0
}

// Compare diffs two plans. A nil old plan is an empty one.
func Compare(old, new *Plan) *Diff {
	if old == nil {
		old = &Plan{}
	}
	d := &Diff{Added: []JobSummary{}, Removed: []JobSummary{}, Changed: []JobChange{}, Moved: []JobMove{}, Outputs: []OutputChange{}}
	oldJobs, newJobs := index(old), index(new)
	for _, id := range slices.Sorted(maps.Keys(oldJobs)) {
		if _, ok := newJobs[id]; !ok {
			d.Removed = append(d.Removed, summary(oldJobs[id]))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(newJobs)) {
		nj := newJobs[id]
		oj, ok := oldJobs[id]
		if !ok {
			d.Added = append(d.Added, summary(nj))
			continue
		}
		if oj.Shard != nj.Shard {
			d.Moved = append(d.Moved, JobMove{ID: id, From: oj.Shard, To: nj.Shard})
		}
		oj.Shard, nj.Shard = "", ""
		if changes := fieldChanges(oj, nj); len(changes) > 0 {
			d.Changed = append(d.Changed, JobChange{ID: id, Changes: changes})
		}
	}
	oldSettings, newSettings := *old, *new
	oldSettings.Jobs, newSettings.Jobs = nil, nil
	d.Settings = append([]FieldChange{}, fieldChanges(&oldSettings, &newSettings)...)
	return d
}

// Text renders the diff for people: + added, - removed, ~ changed (field:
// old -> new), > moved between shards, and a count line.
func (d *Diff) Text() string {
	if d.Empty() {
		return "No changes.\n"
	}
	var b strings.Builder
	for _, j := range d.Added {
		fmt.Fprintf(&b, "+ %s (%s, tier %d, shard %s)\n", j.ID, j.Kind, j.Tier, j.Shard)
	}
	for _, j := range d.Removed {
		fmt.Fprintf(&b, "- %s (%s, tier %d, shard %s)\n", j.ID, j.Kind, j.Tier, j.Shard)
	}
	for _, j := range d.Changed {
		fmt.Fprintf(&b, "~ %s\n", j.ID)
		writeChanges(&b, j.Changes)
	}
	for _, m := range d.Moved {
		fmt.Fprintf(&b, "> %s moved: shard %s -> %s\n", m.ID, m.From, m.To)
	}
	if len(d.Settings) > 0 {
		b.WriteString("~ settings\n")
		writeChanges(&b, d.Settings)
	}
	for _, o := range d.Outputs {
		fmt.Fprintf(&b, "~ %s (ferry compile --%s)\n", o.Output, o.Output)
		for _, l := range []struct {
			what  string
			names []string
		}{{"added", o.Added}, {"removed", o.Removed}, {"changed", o.Changed}} {
			if len(l.names) > 0 {
				fmt.Fprintf(&b, "    %s: %s\n", l.what, strings.Join(l.names, ", "))
			}
		}
	}
	fmt.Fprintf(&b, "\n%d to add, %d to remove, %d to change, %d to move, %d settings changed.\n",
		len(d.Added), len(d.Removed), len(d.Changed), len(d.Moved), len(d.Settings))
	return b.String()
}

func writeChanges(b *strings.Builder, changes []FieldChange) {
	for _, c := range changes {
		fmt.Fprintf(b, "    %s: %s -> %s\n", c.Field, show(c.Old), show(c.New))
	}
}

func show(raw json.RawMessage) string {
	if raw == nil {
		return "(none)"
	}
	return string(raw)
}

func summary(j *Job) JobSummary {
	return JobSummary{ID: j.ID, Kind: j.Kind, Shard: j.Shard, Tier: j.Tier}
}

func index(p *Plan) map[string]*Job {
	m := make(map[string]*Job, len(p.Jobs))
	for i := range p.Jobs {
		j := p.Jobs[i]
		m[j.ID] = &j
	}
	return m
}

// fieldChanges compares two values by their JSON form, so that fields are
// named as in the plan file. Lists of named objects (CDC tables) are keyed
// by name, so adding a table shows as one new table, not a shifted list.
func fieldChanges(old, new any) []FieldChange {
	var r reporter
	cmp.Equal(generic(old), generic(new), cmp.Reporter(&r))
	sort.Slice(r.changes, func(i, j int) bool { return r.changes[i].Field < r.changes[j].Field })
	return r.changes
}

func generic(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return keyByName(out)
}

// keyByName turns lists of objects that carry a "name" into maps by name.
func keyByName(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = keyByName(e)
		}
	case []any:
		named := map[string]any{}
		for _, e := range x {
			obj, ok := e.(map[string]any)
			name, isStr := obj["name"].(string)
			if !ok || !isStr {
				for i := range x {
					x[i] = keyByName(x[i])
				}
				return x
			}
			named[name] = keyByName(obj)
		}
		if len(named) > 0 {
			return named
		}
	}
	return v
}

// reporter collects the leaves where go-cmp finds two values unequal.
type reporter struct {
	path    cmp.Path
	changes []FieldChange
}

func (r *reporter) PushStep(ps cmp.PathStep) { r.path = append(r.path, ps) }
func (r *reporter) PopStep()                 { r.path = r.path[:len(r.path)-1] }

func (r *reporter) Report(rs cmp.Result) {
	if rs.Equal() {
		return
	}
	vx, vy := r.path.Last().Values()
	c := FieldChange{Field: fieldName(r.path)}
	if vx.IsValid() {
		c.Old, _ = json.Marshal(vx.Interface())
	}
	if vy.IsValid() {
		c.New, _ = json.Marshal(vy.Interface())
	}
	r.changes = append(r.changes, c)
}

// fieldName prints a go-cmp path over generic JSON as a.b[key].c.
func fieldName(p cmp.Path) string {
	var b strings.Builder
	for _, step := range p {
		switch s := step.(type) {
		case cmp.MapIndex:
			key := fmt.Sprint(s.Key().Interface())
			if b.Len() > 0 && strings.ContainsAny(key, ".:") {
				fmt.Fprintf(&b, "[%s]", key)
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(key)
		case cmp.SliceIndex:
			fmt.Fprintf(&b, "[%d]", s.Key())
		}
	}
	return b.String()
}
