package offsets

import (
	"sort"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// MirroredTopics returns the topics the plan mirrors from one datacenter to
// another, each with every datacenter it is mirrored between, sorted by name.
func MirroredTopics(p *plan.Plan, from, to string) []Topic {
	dcs := map[string]map[string]bool{}
	direct := map[string]bool{}
	for _, j := range p.Jobs {
		m := j.Mirror
		if m == nil {
			continue
		}
		if dcs[m.Topic] == nil {
			dcs[m.Topic] = map[string]bool{}
		}
		dcs[m.Topic][m.From], dcs[m.Topic][m.To] = true, true
		if m.From == from && m.To == to {
			direct[m.Topic] = true
		}
	}
	var out []Topic
	for topic := range direct {
		t := Topic{Name: topic}
		for dc := range dcs[topic] {
			t.Datacenters = append(t.Datacenters, dc)
		}
		sort.Strings(t.Datacenters)
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
