package control

import (
	"bytes"
	"maps"
	"net/http"
	"time"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

// change is a batch checked against a state: what each op does and the
// objects to write (a nil Spec deletes).
type change struct {
	results []api.Result
	writes  []api.Object
	after   map[string]api.Object // the state once written
}

// prepare checks a batch against the stored objects: kinds and names,
// versions (409 when stale), owners (403 when another owner holds an
// object) and specs (400 when not of their kind's shape). Whether the
// resulting set compiles is checked by the caller.
func prepare(objs map[string]api.Object, owner string, ops []api.Op, now time.Time) (*change, *api.Error) {
	c := &change{after: maps.Clone(objs)}
	seen := map[string]bool{}
	for _, op := range ops {
		if err := checkName(op.Kind, op.Name); err != nil {
			return nil, err
		}
		key := api.Key(op.Kind, op.Name)
		what := api.Describe(op.Kind, op.Name)
		if seen[key] {
			return nil, api.Errorf(http.StatusBadRequest, "%s appears twice in one batch; change it once", what)
		}
		seen[key] = true
		cur, exists := c.after[key]
		if err := checkVersion(what, cur, exists, op.Version); err != nil {
			return nil, err
		}
		if exists && cur.Owner != owner && cur.Owner != "" {
			return nil, &api.Error{Status: http.StatusForbidden, Message: api.OwnedElsewhere(op.Kind, op.Name, cur.Owner)}
		}
		res := api.Result{Kind: op.Kind, Name: op.Name}
		switch op.Op {
		case api.OpPut:
			spec, err := api.DecodeSpec(op.Kind, op.Spec)
			if err != nil {
				return nil, api.Errorf(http.StatusBadRequest, "%s: %v", what, err)
			}
			if exists && bytes.Equal(cur.Spec, spec) && cur.Owner == owner {
				res.Action, res.Version = api.Unchanged, cur.Version
				break
			}
			o := api.Object{Kind: op.Kind, Name: op.Name, Spec: spec, Version: cur.Version + 1, Owner: owner, Updated: now}
			res.Action, res.Version = api.Created, o.Version
			if exists {
				res.Action = api.Updated
			}
			c.after[key] = o
			c.writes = append(c.writes, o)
		case api.OpDelete:
			if !exists {
				return nil, api.Errorf(http.StatusNotFound, "%s does not exist", what)
			}
			res.Action = api.Deleted
			delete(c.after, key)
			c.writes = append(c.writes, api.Object{Kind: op.Kind, Name: op.Name})
		default:
			return nil, api.Errorf(http.StatusBadRequest, "%s: unknown op %q (ops: %s, %s)", what, op.Op, api.OpPut, api.OpDelete)
		}
		c.results = append(c.results, res)
	}
	return c, nil
}

// handOver is the change of a transfer: the object as stored, owned by
// t.To, at the next version.
func handOver(objs map[string]api.Object, t api.Transfer, now time.Time) (*change, *api.Error) {
	key := api.Key(t.Kind, t.Name)
	what := api.Describe(t.Kind, t.Name)
	cur, exists := objs[key]
	if !exists {
		return nil, api.Errorf(http.StatusNotFound, "%s does not exist", what)
	}
	if err := checkVersion(what, cur, exists, t.Version); err != nil {
		return nil, err
	}
	c := &change{after: maps.Clone(objs)}
	res := api.Result{Kind: t.Kind, Name: t.Name, Action: api.Unchanged, Version: cur.Version}
	if cur.Owner != t.To {
		cur.Owner, cur.Version, cur.Updated = t.To, cur.Version+1, now
		c.after[key] = cur
		c.writes = append(c.writes, cur)
		res.Action, res.Version = api.Updated, cur.Version
	}
	c.results = []api.Result{res}
	return c, nil
}

// checkName refuses unknown kinds and names that cannot be record keys.
// Everything else about names is the schema's to check.
func checkName(kind api.Kind, name string) *api.Error {
	switch {
	case !kind.Valid():
		return api.Errorf(http.StatusBadRequest, "unknown kind %q (kinds: %s)", string(kind), api.KindNames())
	case name == "":
		return api.Errorf(http.StatusBadRequest, "a %s needs a name", kind)
	case kind == api.Metrics && name != api.MetricsName:
		return api.Errorf(http.StatusBadRequest, "the metrics settings are named %q, not %q", api.MetricsName, name)
	case kind == api.Alerts && name != api.AlertsName:
		return api.Errorf(http.StatusBadRequest, "the alerts settings are named %q, not %q", api.AlertsName, name)
	case kind == api.CDCTable:
		if _, _, ok := api.SplitTableName(name); !ok {
			return api.Errorf(http.StatusBadRequest, "%s: a CDC table is named SOURCE/DB.TABLE", api.Describe(kind, name))
		}
	case bytes.ContainsRune([]byte(name), '/'):
		return api.Errorf(http.StatusBadRequest, "%s: names hold no \"/\"", api.Describe(kind, name))
	}
	return nil
}

// checkVersion refuses a write based on a version other than the stored
// one.
func checkVersion(what string, cur api.Object, exists bool, want *int64) *api.Error {
	switch {
	case want == nil:
		return nil
	case *want == 0 && exists:
		return api.Errorf(http.StatusConflict, "%s already exists (version %d, owned by %s); read it and update that version, or import it", what, cur.Version, cur.Owner)
	case *want > 0 && !exists:
		return api.Errorf(http.StatusConflict, "%s was deleted after you read version %d", what, *want)
	case *want > 0 && cur.Version != *want:
		return api.Errorf(http.StatusConflict, "%s changed: it is at version %d, you read version %d; read it again and retry", what, cur.Version, *want)
	}
	return nil
}
