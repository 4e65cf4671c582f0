package offsets_test

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/mirror"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestFailoverWithMirrorJob is the failover with ferry's own mirror job,
// run by the executor, instead of the test's mirroring: clients write to
// both datacenters, a group consumes part of dc1, the executor stops while
// records are still on their way, the group is translated and moved, and
// after the executor is back and mirroring has caught up the group's
// consumer in dc2 misses nothing and re-reads what translation predicted.
func TestFailoverWithMirrorJob(t *testing.T) {
	w := newWorld(t, nil, "orders.events", 3)
	p := w.plan()
	w.catchUp = w.waitMirrored
	stop := w.runExecutor(p, plan.KindMirror, mirror.NewKind())
	w.writeAll(10, 8)
	w.waitMirrored()
	consumed := ids(w.consume("dc1", "billing", 40), "dc1")
	w.writeAll(6, 6)
	stop()
	res := w.move("billing")
	w.runExecutor(p, plan.KindMirror, mirror.NewKind())
	w.failover("billing", consumed, res)
}

// plan compiles the world: its topic mirrored at tier 1, and the groups.
func (w *world) plan(groups ...string) *plan.Plan {
	w.t.Helper()
	dcs := map[string]schema.Datacenter{}
	for _, dc := range w.dcs {
		dcs[dc] = schema.Datacenter{Kafka: schema.Kafka{Brokers: []string{w.kafka[dc].Addr()}}}
	}
	p, err := compiler.CompileDefinitions(&schema.Definitions{
		Datacenters: dcs,
		Mirrors:     map[string]schema.Mirror{w.topic: {Partitions: int(w.parts), Tier: 1}},
		Groups:      groups,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// runExecutor runs the jobs of p, of the one kind given, until the
// returned stop is called or the test ends.
func (w *world) runExecutor(p *plan.Plan, kind string, k executor.Kind) (stop func()) {
	ctx, cancel := context.WithCancel(w.ctx)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	only := *p
	only.Jobs = slices.DeleteFunc(slices.Clone(p.Jobs), func(j plan.Job) bool { return j.Kind != kind })
	ex := executor.New(executor.WithKind(kind, k), executor.WithLogger(logger))
	ex.Apply(ctx, &only)
	stop = func() { cancel(); ex.Stop() }
	w.t.Cleanup(stop)
	return stop
}

// waitMirrored waits until both datacenters hold every record the clients
// wrote.
func (w *world) waitMirrored() {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		done := true
		for _, dc := range w.dcs {
			got := w.read(dc)
			for p := range w.parts {
				written := 0
				for _, from := range w.dcs {
					written += len(w.logs[from][p])
				}
				if len(got[p]) != written {
					done = false
				}
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatal("mirroring did not catch up in 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
