// Package compiler turns a definition set into a plan. It runs in stages,
// each in its own file: load (parse the .cue files and evaluate them with
// the embedded schema), validate (collect every schema problem), decode (to
// Go types), check (cross references CUE cannot express), jobs (one per
// mirror direction and CDC source) and place (jobs onto shards). Every
// problem of every stage is reported, sorted, as file:line:col: message.
package compiler

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"time"

	"cuelang.org/go/cue/token"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/schema"
)

// Option configures a compilation.
type Option func(*options)

type options struct {
	previous *plan.Plan
	shared   *schema.Definitions
	jobCheck func(plan.Job) error
}

// WithPrevious gives the plan currently running (or the base branch's
// plan). Jobs keep their shards from it, so adding or removing jobs moves no
// other job unless a shard is over capacity. Default: none, jobs are placed
// afresh.
func WithPrevious(p *plan.Plan) Option { return func(o *options) { o.previous = p } }

// WithJobCheck runs check on every job of a valid definition set; each
// error is a problem of the definition the job comes from (a sink job's:
// its table's sink). It is for checks the definitions alone cannot make,
// such as the databases' (ferry validate --sources). Default: none.
func WithJobCheck(check func(plan.Job) error) Option { return func(o *options) { o.jobCheck = check } }

// CompileDir compiles the .cue files of dir. The error, if any, is Errors
// (every problem, positioned) or a plain error when dir cannot be read.
func CompileDir(dir string, opts ...Option) (*plan.Plan, *schema.Definitions, error) {
	src, errs := loadDir(dir)
	if errs != nil {
		return nil, nil, errs.sort()
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.shared == nil {
		return src.compile(opts)
	}
	own := src.declaredNames()
	if src, errs = src.withShared(o.shared, own); errs != nil {
		return nil, nil, errs.sort()
	}
	p, defs, err := src.compile(opts)
	if err != nil {
		return nil, nil, err
	}
	return p, ownOnly(defs, own), nil
}

// CompileDefinitions compiles definitions held as Go values, such as those
// stored behind the control API. They pass the same schema and checks as
// files; the errors carry paths but no positions.
func CompileDefinitions(defs *schema.Definitions, opts ...Option) (*plan.Plan, error) {
	b, err := json.Marshal(defs)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ferry-definitions")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "definitions.cue")
	src, errs := loadOverlay(dir, map[string][]byte{file: append([]byte("package pipelines\n"), b...)})
	if errs == nil {
		src.virtual = true
		var p *plan.Plan
		p, _, err = src.compile(opts)
		if err == nil {
			return p, nil
		}
		errs = err.(Errors)
	}
	for _, e := range errs {
		e.Pos = token.NoPos
	}
	return nil, errs
}

func (s *source) compile(opts []Option) (*plan.Plan, *schema.Definitions, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	errs := s.validate()
	d := s.decode(errs)
	c := &checker{src: s, d: d, running: runningDecls(o.previous)}
	c.check()
	pend := jobs(&d.defs)
	shards := place(c, &d.defs, pend, o.previous)
	if o.jobCheck != nil && len(errs)+len(c.errs) == 0 {
		for _, j := range pend {
			if err := o.jobCheck(j.job); err != nil {
				c.errorf(j.origin(), "%v", err)
			}
		}
	}
	errs = append(errs, c.errs...)
	if len(errs) > 0 {
		return nil, nil, errs.sort()
	}
	p := &plan.Plan{
		Version:     plan.Version,
		Datacenters: d.defs.Datacenters,
		Shards:      shards,
		Tiers:       map[string]plan.Duration{},
		Metrics:     plan.Metrics{Interval: plan.Duration(DefaultMetricsInterval)},
		Alerts:      d.defs.Alerts,
	}
	for t := 1; t <= 4; t++ {
		p.Tiers[string(rune('0'+t))] = plan.Duration(budget(&d.defs, t))
	}
	if m := d.defs.Metrics; m != nil && m.Interval != "" {
		iv, _ := time.ParseDuration(m.Interval)
		p.Metrics.Interval = plan.Duration(iv)
	}
	for _, j := range pend {
		p.Jobs = append(p.Jobs, j.job)
	}
	// Jobs are in ID order in memory as in the file: Plan.Job searches them.
	sort.Slice(p.Jobs, func(a, b int) bool { return p.Jobs[a].ID < p.Jobs[b].ID })
	return p, &d.defs, nil
}
