package control

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"cuelang.org/go/cue"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/control/api"
	"github.com/ferry-pipelines/ferry/schema"
)

// compileObjects compiles stored objects as one definition set, with the
// same schema and checks as CUE files, keeping the placements of prev.
//
// Objects are written one at a time, so two states that files never have
// are accepted on the way: a CDC source whose tables are not written yet
// (it captures nothing and stays out of the plan until its first table),
// and a set that declares no datacenter while nothing needs one (no mirror
// and no CDC source: shards alone run nothing). Their other fields are
// checked all the same.
func compileObjects(objs map[string]api.Object, prev *plan.Plan) (*plan.Plan, *api.Error) {
	defs, err := api.Join(sorted(objs))
	if err != nil {
		return nil, api.Errorf(http.StatusBadRequest, "%v", err)
	}
	waiting := map[string]bool{} // paths whose one error is the waiting
	for name, src := range defs.CDC {
		if len(src.Tables) == 0 {
			waiting[cue.MakePath(cue.Str("cdc"), cue.Str(name), cue.Str("tables")).String()] = true
		}
	}
	idle := len(defs.Mirrors) == 0 && len(defs.CDC) == 0
	if idle && len(defs.Datacenters) == 0 {
		waiting["datacenters"] = true
	}
	p, errs := compileSet(defs, prev)
	if len(errs) == 0 {
		return p, nil
	}
	if e := compileError(errs, waiting); e != nil {
		return nil, e
	}
	// Only waiting objects failed: the plan is that of the others.
	for name, src := range defs.CDC {
		if len(src.Tables) == 0 {
			delete(defs.CDC, name)
		}
	}
	if len(defs.Datacenters) == 0 {
		return &plan.Plan{Version: plan.Version, Datacenters: defs.Datacenters, Shards: defs.Shards, Tiers: map[string]plan.Duration{}}, nil
	}
	if p, errs = compileSet(defs, prev); len(errs) > 0 {
		return nil, compileError(errs, nil)
	}
	return p, nil
}

// compileError is the 400 answer listing the compiler's problems, leaving
// out those at the skipped paths; nil when none is left. Problems that
// differ only in their path (a deleted shard that 125 mirrors name) are
// one line: the first in full, then how many more and which.
func compileError(errs compiler.Errors, skip map[string]bool) *api.Error {
	var order []string
	same := map[string][]*compiler.Error{}
	for _, e := range errs {
		if skip[e.Path] {
			continue
		}
		if same[e.Msg] == nil {
			order = append(order, e.Msg)
		}
		same[e.Msg] = append(same[e.Msg], e)
	}
	if len(order) == 0 {
		return nil
	}
	problems := make([]string, 0, len(order))
	for _, msg := range order {
		group := same[msg]
		problem := group[0].Error()
		if more := group[1:]; len(more) > 0 {
			var paths []string
			for _, e := range more[:min(len(more), shownPaths)] {
				paths = append(paths, e.Path)
			}
			list := strings.Join(paths, ", ")
			switch n := len(more) - shownPaths; {
			case n == 1:
				list += " and 1 other"
			case n > 1:
				list += fmt.Sprintf(" and %d others", n)
			}
			problem += fmt.Sprintf("; the same for %d more: %s", len(more), list)
		}
		problems = append(problems, problem)
	}
	return &api.Error{
		Status:   http.StatusBadRequest,
		Message:  "the definitions would not compile:",
		Problems: problems,
	}
}

// shownPaths is how many paths of a repeated problem its line names.
const shownPaths = 3

// memo remembers the last compilation. A write compiles the set it is
// about to store, and every executor compiles that same set again when the
// write comes back from Kafka: this one does not have to.
type memo struct {
	mu   sync.Mutex
	key  string
	prev *plan.Plan
	plan *plan.Plan
	err  *api.Error
}

// compile is compileObjects, remembered.
func (m *memo) compile(objs map[string]api.Object, prev *plan.Plan) (*plan.Plan, *api.Error) {
	var key strings.Builder
	for _, o := range sorted(objs) { // versions, owners and times do not change a plan
		key.WriteString(api.Key(o.Kind, o.Name))
		key.WriteByte(0)
		key.Write(o.Spec)
		key.WriteByte(0)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.key == key.String() && m.prev == prev && m.key != "" {
		return m.plan, m.err
	}
	p, aerr := compileObjects(objs, prev)
	m.key, m.prev, m.plan, m.err = key.String(), prev, p, aerr
	return p, aerr
}

// compileSet runs the compiler; a failure other than compiler.Errors (it
// could not write its temporary file) becomes one problem.
func compileSet(defs *schema.Definitions, prev *plan.Plan) (*plan.Plan, compiler.Errors) {
	var opts []compiler.Option
	if prev != nil {
		opts = append(opts, compiler.WithPrevious(prev))
	}
	p, err := compiler.CompileDefinitions(defs, opts...)
	if err == nil {
		return p, nil
	}
	var errs compiler.Errors
	if errors.As(err, &errs) {
		return nil, errs
	}
	return nil, compiler.Errors{{Msg: err.Error()}}
}
