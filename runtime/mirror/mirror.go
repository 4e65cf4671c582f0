// Package mirror is the mirror job kind: each job copies one topic from one
// datacenter to the same topic in another, partition by partition, exactly
// once and without loops.
//
// Jobs are the unit of the plan, of placement and of status, but a job owns
// no Kafka client: an executor's mirror jobs of one shard, direction and
// tier share a lane (lane.go). A lane spreads its partitions over
// systopics.SlotCount slots (slot.go), each with a fetcher in the source
// datacenter (fetch.go) and one transactional producer in the target
// datacenter whose transactions carry the copies of all the slot's
// partitions together with their checkpoints. The
// processes of a shard share a lane's slots through a consumer group on
// ferry.slots; a slot's transactional ID is the lane's and the slot's, so
// whoever takes a slot fences its previous owner. Taking a partition is a
// claim (claim.go) that also fences a previous writer of another lane, as
// when a job moves between shards or tiers. So an idle fleet costs a few
// clients per lane, whatever the number of topics and partitions.
//
// docs/design/mirroring.md gives the argument for exactly once, the
// failure cases and the figures.
package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"sync"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// Option configures the mirror kind of one executor.
type Option func(*fleet)

// WithLogger sets the logger of what the jobs share (lanes, slots and
// provisioning). Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(f *fleet) { f.logger = l } }

// NewKind returns the mirror kind of one executor: the jobs it builds share
// their lanes. Give each executor its own (an executor is a member of its
// shard's groups).
func NewKind(opts ...Option) executor.Kind {
	f := &fleet{logger: slog.Default(), lanes: map[laneKey]*lane{}, provs: map[string]*provisioner{}, kins: map[string][]*kin{}, readers: map[string]*kafkaconn.Readers{}, copiers: map[string]*copiers{}}
	for _, o := range opts {
		o(f)
	}
	return f.newJob
}

// fleet is what the mirror jobs of one executor share.
type fleet struct {
	logger *slog.Logger

	mu    sync.Mutex
	lanes map[laneKey]*lane
	provs map[string]*provisioner // by datacenter definition
	kins  map[string][]*kin       // by lane name, a lane's slots': they outlive a lane that stops with its last job
	// readers read checkpoints for the claims of the lanes that write to
	// a datacenter (by its definition), with the clients they keep, while
	// there are such lanes.
	readers map[string]*kafkaconn.Readers
	copiers map[string]*copiers // the slots' producers, by their datacenter's definition
}

type job struct {
	f    *fleet
	env  *executor.Env
	spec plan.Job
	key  laneKey
}

func (f *fleet) newJob(env *executor.Env, spec plan.Job) (executor.Runner, error) {
	m := spec.Mirror
	if m == nil {
		return nil, fmt.Errorf("%s: not a mirror job", spec.ID)
	}
	dcs := map[string]any{}
	for _, dc := range []string{m.From, m.To} {
		d, ok := env.Plan.Datacenters[dc]
		if !ok {
			return nil, fmt.Errorf("%s: datacenter %s is not in the plan", spec.ID, dc)
		}
		dcs[dc] = d
	}
	defs, _ := json.Marshal(dcs)
	key := laneKey{shard: spec.Shard, from: m.From, to: m.To, tier: spec.Tier, budget: spec.Budget, client: spec.Client, dcs: string(defs)}
	return &job{f: f, env: env, spec: spec, key: key}, nil
}

// Run provisions the topic in both datacenters, then has its lane copy the
// partitions this process is given until ctx ends, or until one of them
// cannot be written (the executor then starts the job again).
func (j *job) Run(ctx context.Context) error {
	m := j.spec.Mirror
	if _, err := j.f.provision(ctx, j.env, m.From, j.spec); err != nil {
		return err
	}
	maxBytes, err := j.f.provision(ctx, j.env, m.To, j.spec)
	if err != nil {
		return err
	}
	l, err := j.f.join(j.env, j.key)
	if err != nil {
		return err
	}
	defer j.f.leave(l)
	lj := l.add(j.env, j.spec, maxBytes)
	defer l.remove(lj)
	j.env.Metrics.SetState(metrics.StateRunning, nil)
	select {
	case <-ctx.Done():
		return nil
	case err := <-lj.failed:
		return err
	}
}

// provision makes sure the job's topic is right in datacenter dc, through
// the datacenter's shared provisioner, and returns its max.message.bytes.
func (f *fleet) provision(ctx context.Context, env *executor.Env, dc string, spec plan.Job) (int32, error) {
	def, _ := json.Marshal(env.Plan.Datacenters[dc])
	f.mu.Lock()
	p := f.provs[string(def)]
	if p == nil {
		opts, err := env.Kafka(dc)
		if err != nil {
			f.mu.Unlock()
			return 0, err
		}
		if p, err = newProvisioner(dc, opts, f.logger); err != nil {
			f.mu.Unlock()
			return 0, err
		}
		f.provs[string(def)] = p
	}
	f.mu.Unlock()
	maxBytes, err := p.ensure(ctx, env.Logger, spec.Mirror)
	if unreachable(err) {
		return 0, env.Unreachable(ctx, dc, err)
	}
	return maxBytes, err
}

// readersOf is the fleet's Readers of datacenter dc (with f.mu held).
func (f *fleet) readersOf(env *executor.Env, dc string) (*kafkaconn.Readers, error) {
	def, _ := json.Marshal(env.Plan.Datacenters[dc])
	if rs := f.readers[string(def)]; rs != nil {
		return rs, nil
	}
	opts, err := clientOpts(env, dc, f.logger)
	if err != nil {
		return nil, err
	}
	rs := kafkaconn.NewReaders(opts)
	f.readers[string(def)] = rs
	return rs, nil
}

// copiersIn is the fleet's copiers of datacenter dc (with f.mu held).
func (f *fleet) copiersIn(env *executor.Env, dc string) *copiers {
	def, _ := json.Marshal(env.Plan.Datacenters[dc])
	c := f.copiers[string(def)]
	if c == nil {
		c = new(copiers)
		f.copiers[string(def)] = c
	}
	return c
}

// join returns the job's lane, starting it for the first of its jobs.
func (f *fleet) join(env *executor.Env, key laneKey) (*lane, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.lanes[key]
	if l == nil {
		var err error
		if l, err = newLane(f, env, key); err != nil {
			return nil, err
		}
		f.lanes[key] = l
	}
	l.refs++
	return l, nil
}

// leave stops the lane when its last job leaves it, and closes its
// Readers when no other lane reads with them.
func (f *fleet) leave(l *lane) {
	f.mu.Lock()
	l.refs--
	last := l.refs == 0
	unread := false
	if last {
		delete(f.lanes, l.key)
		unread = true
		for _, o := range f.lanes {
			unread = unread && o.readers != l.readers
		}
		if unread {
			maps.DeleteFunc(f.readers, func(_ string, rs *kafkaconn.Readers) bool { return rs == l.readers })
		}
	}
	f.mu.Unlock()
	if last {
		l.close()
	}
	if unread {
		l.readers.Close()
	}
}
