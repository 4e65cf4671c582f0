package observe

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// Changes says how the alert rules and the dashboard of plan new differ
// from those of old (nil: an empty plan), by the names of their parts:
// rules by alert or record name (an alert of a shard or a CDC source by
// the one it watches), panels by row and title.
func Changes(old, new *plan.Plan) ([]plan.OutputChange, error) {
	if old == nil {
		old = &plan.Plan{}
	}
	var out []plan.OutputChange
	for _, o := range []struct {
		name  string
		parts func(*plan.Plan) (map[string]any, error)
	}{{"alerts", ruleParts}, {"dashboard", panelParts}} {
		a, err := o.parts(old)
		if err != nil {
			return nil, err
		}
		b, err := o.parts(new)
		if err != nil {
			return nil, err
		}
		c := plan.OutputChange{Output: o.name, Added: []string{}, Removed: []string{}, Changed: []string{}}
		for _, k := range slices.Sorted(maps.Keys(b)) {
			switch v, ok := a[k]; {
			case !ok:
				c.Added = append(c.Added, k)
			case !reflect.DeepEqual(v, b[k]):
				c.Changed = append(c.Changed, k)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(a)) {
			if _, ok := b[k]; !ok {
				c.Removed = append(c.Removed, k)
			}
		}
		if len(c.Added)+len(c.Removed)+len(c.Changed) > 0 {
			out = append(out, c)
		}
	}
	return out, nil
}

func ruleParts(p *plan.Plan) (map[string]any, error) {
	b, err := Rules(p)
	if err != nil {
		return nil, err
	}
	var f RuleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	parts := map[string]any{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			name := r.Record + r.Alert
			switch {
			case r.Labels["shard"] != "":
				name += " " + r.Labels["shard"]
			case r.Labels["job"] != "":
				name += " " + r.Labels["job"]
			}
			parts[name] = r
		}
	}
	return parts, nil
}

func panelParts(p *plan.Plan) (map[string]any, error) {
	b, err := Dashboard(p)
	if err != nil {
		return nil, err
	}
	var board Board
	if err := json.Unmarshal(b, &board); err != nil {
		return nil, err
	}
	parts := map[string]any{}
	row := ""
	for _, pn := range board.Panels {
		if pn.Type == "row" {
			row = pn.Title
			continue
		}
		pn.ID, pn.GridPos = 0, GridPos{} // where a panel sits is no change of it
		parts[fmt.Sprintf("%s: %s", row, pn.Title)] = pn
	}
	return parts, nil
}
