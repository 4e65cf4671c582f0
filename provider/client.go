package provider

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework/resource/schema"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

// client is the provider's connection to the control API, shared by its
// resources and data sources for one Terraform run (plan or apply: each
// run configures a new provider instance).
//
// Terraform plans resources one at a time, so checking each planned object
// alone against what is stored would refuse a valid configuration whose
// objects refer to each other before any of them exists. client therefore
// keeps the changes planned so far in this run and checks each new one
// together with them, in one dry-run batch: a plan fails exactly when the
// whole planned set would not compile. A change leaves the set once it is
// applied (the stored objects then hold it).
type client struct {
	*api.Client
	owner  string // the owner it writes as
	placed placements

	mu      sync.Mutex
	planned map[string]api.Op // by api.Key
	order   []string          // keys in planning order
	// open holds, by api.Key, the attributes of a planned object whose
	// values are known only after apply: problems about them are not the
	// plan's to judge.
	open    map[string]openAttrs
	unknown bool            // a planned object's name is known only after apply
	creates map[string]bool // objects a resource plans to create, by api.Key
	holds   map[string]bool // objects this run's state holds (planned with a prior state)
}

func newClient(c *api.Client, owner string) *client {
	return &client{Client: c, owner: owner, open: map[string]openAttrs{}, planned: map[string]api.Op{}, creates: map[string]bool{}, holds: map[string]bool{}}
}

// held records an object this configuration's state holds.
func (c *client) held(kind api.Kind, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holds[api.Key(kind, name)] = true
}

// creating records that a resource of this run plans to create the
// object: whether this configuration's state holds it (a replacement),
// and whether it is the first to (Terraform plans each resource once per
// run, plan or apply).
func (c *client) creating(kind api.Kind, name string) (held, first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := api.Key(kind, name)
	if c.creates[key] {
		return c.holds[key], false
	}
	c.creates[key] = true
	return c.holds[key], true
}

// check adds a planned change and dry-runs every change planned so far.
// A planned deletion is only remembered: Terraform may plan the deletion of
// a datacenter before that of the mirrors using it, so deletions are left
// to apply time, when Terraform orders them.
//
// An object some of whose attributes are known only after apply (open) is
// checked with those attributes left out, and the problems the compiler
// finds with them are dropped: every other check still runs, for this
// object and the ones planned after it.
func (c *client) check(ctx context.Context, op api.Op, open openAttrs) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remember(op)
	key := api.Key(op.Kind, op.Name)
	delete(c.open, key)
	if len(open.names) > 0 {
		c.open[key] = open
	}
	if op.Op == api.OpDelete || c.unknown {
		return nil
	}
	ops := make([]api.Op, 0, len(c.order))
	for _, key := range c.order {
		ops = append(ops, c.planned[key])
	}
	if _, err := c.Batch(ctx, api.Batch{Ops: ops, DryRun: true}); err != nil {
		if err = c.judged(err); err == nil {
			return nil
		}
		c.forget(key) // so that the objects planned next are not blamed for it
		return blame(op, err, len(ops)-1)
	}
	return nil
}

// blame words a refusal of the changes planned so far, which fit without
// op, as op's: the compiler may name another object (the job it placed
// last on a full shard, say), while op is the one that does not fit.
func blame(op api.Op, err error, others int) error {
	e, ok := err.(*api.Error)
	if !ok || len(e.Problems) == 0 || others == 0 {
		return err
	}
	prefix := objectPrefix(op.Kind, op.Name)
	for _, p := range e.Problems {
		if strings.HasPrefix(p, prefix) {
			return err // the compiler names op itself
		}
	}
	return &api.Error{Status: e.Status, Problems: e.Problems, Message: fmt.Sprintf(
		"%s does not fit with the %d other changes planned before it in this run, which fit without it; %s", api.Describe(op.Kind, op.Name), others, e.Message)}
}

// openAttrs are the top-level attributes of a planned object whose values
// are unknown, and the resource's schema to name them by.
type openAttrs struct {
	kind  api.Kind
	name  string
	attrs map[string]schema.Attribute
	names map[string]bool
}

// judged drops from a refusal the problems about attributes whose values
// are not known yet; nil when none is left.
func (c *client) judged(err error) error {
	e, ok := err.(*api.Error)
	if !ok || len(e.Problems) == 0 || len(c.open) == 0 {
		return err
	}
	var left []string
	for _, problem := range e.Problems {
		if !c.isOpen(problem) {
			left = append(left, problem)
		}
	}
	if len(left) == 0 {
		return nil
	}
	return &api.Error{Status: e.Status, Message: e.Message, Problems: left}
}

// isOpen reports whether a problem is about an attribute not known yet.
func (c *client) isOpen(problem string) bool {
	for _, o := range c.open {
		if p, ok := attributeOf(o.attrs, o.kind, o.name, &api.Error{Problems: []string{problem}}); ok && o.names[rootName(p)] {
			return true
		}
	}
	return false
}

// notKnown records that an object's name is not known yet: later checks
// of this run would miss it, so they are skipped.
func (c *client) notKnown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unknown = true
}

// applied forgets a planned change that is now stored.
func (c *client) applied(kind api.Kind, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forget(api.Key(kind, name))
}

func (c *client) forget(key string) {
	delete(c.planned, key)
	delete(c.open, key)
	c.order = slices.DeleteFunc(c.order, func(k string) bool { return k == key })
}

func (c *client) remember(op api.Op) {
	op.Version = nil // a dry run of the plan checks what would be stored, not versions
	key := api.Key(op.Kind, op.Name)
	if _, ok := c.planned[key]; !ok {
		c.order = append(c.order, key)
	}
	c.planned[key] = op
}
