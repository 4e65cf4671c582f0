// Package executor runs a plan: every job of its shard, each behind the
// small Job interface of its kind (mirror, cdc, ...). Apply reconciles the
// running jobs to a new plan, touching only what changed: new jobs start,
// removed ones stop, changed ones restart (or update in place when their
// kind can), untouched ones keep running. A failed job is restarted after a
// backoff; it never takes the process or the other jobs down.
package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// Option configures an Executor.
type Option func(*Executor)

// WithKind registers the job kind that runs jobs of plan kind name.
func WithKind(name string, k Kind) Option { return func(e *Executor) { e.kinds[name] = k } }

// WithShard runs only the jobs placed on shard. Default: every job.
func WithShard(shard string) Option { return func(e *Executor) { e.shard = shard } }

// WithInstance gives this process a stable name for static group
// membership (see Env.Instance). Default: none.
func WithInstance(name string) Option { return func(e *Executor) { e.instance = name } }

// WithLogger sets the logger. Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(e *Executor) { e.logger = l } }

// WithBackoff bounds the wait before a failed job starts again. Default:
// from 500ms, doubling, up to 30s.
func WithBackoff(first, max time.Duration) Option {
	return func(e *Executor) { e.backoffMin, e.backoffMax = first, max }
}

// Executor runs the jobs of a plan.
type Executor struct {
	kinds      map[string]Kind
	shard      string
	process    string
	instance   string
	logger     *slog.Logger
	registry   *metrics.Registry
	backoffMin time.Duration
	backoffMax time.Duration

	mu      sync.Mutex
	plan    *plan.Plan
	running map[string]*running
}

type running struct {
	spec   plan.Job
	dcs    map[string]any // the datacenter definitions the job was started with
	impl   Runner
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns an executor with no plan; Apply gives it one.
func New(opts ...Option) *Executor {
	e := &Executor{
		kinds:      map[string]Kind{},
		logger:     slog.Default(),
		backoffMin: 500 * time.Millisecond,
		backoffMax: 30 * time.Second,
		running:    map[string]*running{},
		process:    DefaultProcess(),
	}
	for _, o := range opts {
		o(e)
	}
	e.registry = metrics.NewRegistry(e.process)
	return e
}

// Registry is where the running jobs keep their figures.
func (e *Executor) Registry() *metrics.Registry { return e.registry }

// Plan is the plan last applied.
func (e *Executor) Plan() *plan.Plan {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.plan
}

// Change counts what an Apply did.
type Change struct {
	Started, Stopped, Restarted, Updated, Kept []string
}

// Apply makes the running jobs those of p on this executor's shard. The
// context bounds the jobs' lives as well: cancelling it stops them all.
func (e *Executor) Apply(ctx context.Context, p *plan.Plan) Change {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ch Change
	want := map[string]plan.Job{}
	for _, j := range p.Jobs {
		if e.shard == "" || j.Shard == e.shard {
			want[j.ID] = j
		}
	}
	for _, id := range slices.Sorted(maps.Keys(e.running)) {
		if _, ok := want[id]; !ok {
			e.stop(id)
			e.registry.Remove(id)
			ch.Stopped = append(ch.Stopped, id)
		}
	}
	e.plan = p
	for _, id := range slices.Sorted(maps.Keys(want)) {
		spec := want[id]
		r, ok := e.running[id]
		switch {
		case !ok:
			e.start(ctx, p, spec)
			ch.Started = append(ch.Started, id)
		case reflect.DeepEqual(r.spec, spec) && reflect.DeepEqual(r.dcs, jobDatacenters(p, spec)):
			ch.Kept = append(ch.Kept, id)
		case reflect.DeepEqual(r.dcs, jobDatacenters(p, spec)) && updates(r.impl, spec):
			r.spec = spec
			e.registry.Job(spec).SetInfo(spec)
			ch.Updated = append(ch.Updated, id)
		default:
			e.stop(id)
			e.registry.Remove(id)
			e.start(ctx, p, spec)
			ch.Restarted = append(ch.Restarted, id)
		}
	}
	return ch
}

func updates(impl Runner, spec plan.Job) bool {
	u, ok := impl.(Updater)
	return ok && u.Update(spec)
}

// Stop stops every job and waits for them to finish cleanly.
func (e *Executor) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(e.running)) {
		e.stop(id)
	}
}

func (e *Executor) stop(id string) {
	r := e.running[id]
	r.cancel()
	<-r.done
	delete(e.running, id)
	e.logger.Info("job stopped", "job", id)
}

func (e *Executor) start(ctx context.Context, p *plan.Plan, spec plan.Job) {
	jctx, cancel := context.WithCancel(ctx)
	r := &running{spec: spec, dcs: jobDatacenters(p, spec), cancel: cancel, done: make(chan struct{})}
	m := e.registry.Job(spec)
	env := &Env{Plan: p, Shard: e.shard, Process: e.process, Instance: e.instance, Logger: e.logger.With("job", spec.ID), Metrics: m}
	kind, ok := e.kinds[spec.Kind]
	var err error
	if !ok {
		err = fmt.Errorf("job kind %q is not supported by this ferry", spec.Kind)
	} else {
		r.impl, err = kind(env, spec)
	}
	e.running[spec.ID] = r
	if err != nil {
		m.SetState(metrics.StateError, err)
		env.Logger.Error("job cannot start", "error", err)
		go func() { <-jctx.Done(); close(r.done) }()
		return
	}
	go e.supervise(jctx, env, r)
}

// supervise runs a job until its context ends, starting it again after a
// growing backoff whenever it fails.
func (e *Executor) supervise(ctx context.Context, env *Env, r *running) {
	defer close(r.done)
	backoff := e.backoffMin
	for {
		env.Metrics.SetState(metrics.StateStarting, nil)
		started := time.Now()
		err := r.impl.Run(ctx)
		if ctx.Err() != nil {
			env.Metrics.SetState(metrics.StateStopped, nil)
			return
		}
		if err == nil {
			err = errors.New("job returned without being stopped")
		}
		state := metrics.StateError
		var w *WaitingError
		if errors.As(err, &w) {
			state = metrics.StateWaiting
		}
		env.Metrics.SetState(state, err)
		if time.Since(started) > 2*e.backoffMax {
			backoff = e.backoffMin // it ran well for a while: start over
		}
		env.Logger.Error("job failed; restarting", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			env.Metrics.SetState(metrics.StateStopped, nil)
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, e.backoffMax)
	}
}

// WaitingError marks a job failure as waiting for something outside ferry,
// such as a datacenter that cannot be reached: the job is retried and shown
// as waiting rather than failed.
type WaitingError struct{ Err error }

func (w *WaitingError) Error() string { return w.Err.Error() }
func (w *WaitingError) Unwrap() error { return w.Err }

// Waiting wraps err as a WaitingError.
func Waiting(err error) error { return &WaitingError{Err: err} }

// jobDatacenters returns the definitions of the datacenters a job uses, so
// that a changed address or credential restarts exactly the jobs that use it.
func jobDatacenters(p *plan.Plan, j plan.Job) map[string]any {
	out := map[string]any{}
	for name, dc := range p.Datacenters {
		if jobUses(j, name) {
			out[name] = dc
		}
	}
	return out
}

func jobUses(j plan.Job, dc string) bool {
	switch {
	case j.Mirror != nil:
		return j.Mirror.From == dc || j.Mirror.To == dc
	case j.CDC != nil:
		return j.CDC.Datacenter == dc
	}
	return true
}
