package executor

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// Lease session settings: when the holding process dies, another of the
// shard takes the job over within leaseSession.
const (
	leaseSession   = 6 * time.Second
	leaseHeartbeat = 500 * time.Millisecond
)

// Exclusive wraps a kind whose jobs must run in exactly one process at a
// time, such as a CDC source: a binlog has one reader. The processes of a
// shard that run the job all join the consumer group ferry.<shard>.<job> on
// the one-partition topic ferry.leases in the job's datacenter; the member
// that the group gives the partition to holds the lease and runs the job,
// the others stand by. When the holder stops or dies the group gives the
// partition to a survivor, which starts the job from its checkpoint; the
// job's transactional producer fences the old holder should it still be
// alive, so the lease needs no clock.
func Exclusive(k Kind) Kind {
	return func(env *Env, spec plan.Job) (Runner, error) {
		inner, err := k(env, spec)
		if err != nil {
			return nil, err
		}
		return &exclusive{env: env, spec: spec, inner: inner}, nil
	}
}

type exclusive struct {
	env   *Env
	spec  plan.Job
	inner Runner
}

// Update passes a changed plan entry on to the job, which keeps running.
func (x *exclusive) Update(spec plan.Job) bool {
	u, ok := x.inner.(Updater)
	return ok && u.Update(spec)
}

// Run holds the lease and runs the job whenever this process holds it,
// until ctx ends.
func (x *exclusive) Run(ctx context.Context) error {
	dc := x.spec.Datacenter()
	opts, err := x.env.Kafka(dc)
	if err != nil {
		return err
	}
	if err := ensureLeases(ctx, opts); err != nil {
		return x.env.Unreachable(ctx, dc, err)
	}
	held := make(chan bool, 1)
	signal := func(v bool) {
		select {
		case <-held:
		default:
		}
		held <- v
	}
	gopts := append(append([]kgo.Opt(nil), opts...),
		kgo.ConsumerGroup(Group(x.spec.Shard, x.spec.ID)),
		kgo.ConsumeTopics(systopics.Leases),
		kgo.SessionTimeout(leaseSession),
		kgo.HeartbeatInterval(leaseHeartbeat),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if len(m[systopics.Leases]) > 0 {
				signal(true)
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if len(m[systopics.Leases]) > 0 {
				signal(false)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			if len(m[systopics.Leases]) > 0 {
				signal(false)
			}
		}),
	)
	if x.env.Instance != "" {
		gopts = append(gopts, kgo.InstanceID(x.env.Instance+"/"+x.spec.ID))
	}
	cl, err := kgo.NewClient(gopts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	go func() { // the lease topic stays empty; polling keeps the member alive
		for ctx.Err() == nil {
			cl.PollFetches(ctx)
		}
	}()
	x.env.Metrics.SetState(metrics.StateStandby, nil)
	var (
		running bool
		stop    context.CancelFunc
		wg      sync.WaitGroup
		failed  = make(chan error, 1)
	)
	halt := func() {
		if running {
			stop()
			wg.Wait()
			running = false
			x.env.Metrics.SetState(metrics.StateStandby, nil)
		}
	}
	defer halt()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err // the executor restarts us; the group keeps or moves the lease
		case h := <-held:
			switch {
			case h && !running:
				x.env.Logger.Info("holding the job's lease; starting")
				jctx, cancel := context.WithCancel(ctx)
				stop = cancel
				running = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := x.inner.Run(jctx); err != nil && jctx.Err() == nil {
						failed <- err
					}
				}()
			case !h && running:
				x.env.Logger.Info("lease moved to another process; stopping")
				halt()
			}
		}
	}
}

// ensureLeases creates ferry.leases, the empty one-partition topic whose
// partition the holders of jobs' leases are given.
func ensureLeases(ctx context.Context, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return systopics.Ensure(ctx, kadm.NewClient(cl), systopics.Leases)
}
