package executor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/schema"
)

// fakeKind builds runners that record their life in a log, fail while
// their job's weight is negative, and take updates of a job whose tier is 4.
type fakeKind struct {
	mu  sync.Mutex
	log []string
}

func (k *fakeKind) note(format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.log = append(k.log, fmt.Sprintf(format, args...))
}

func (k *fakeKind) events() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.log...)
}

func (k *fakeKind) new(env *executor.Env, spec plan.Job) (executor.Runner, error) {
	return &fakeRunner{k: k, env: env, spec: spec}, nil
}

type fakeRunner struct {
	k    *fakeKind
	env  *executor.Env
	spec plan.Job
}

func (r *fakeRunner) Run(ctx context.Context) error {
	r.k.note("start %s v%d", r.spec.ID, r.spec.Weight)
	if r.spec.Weight < 0 {
		return errors.New("broken on purpose")
	}
	r.env.Metrics.SetState(metrics.StateRunning, nil)
	<-ctx.Done()
	r.k.note("stop %s", r.spec.ID)
	return nil
}

func (r *fakeRunner) Update(spec plan.Job) bool {
	if spec.Tier != 4 {
		return false
	}
	r.k.note("update %s v%d", spec.ID, spec.Weight)
	return true
}

func job(id string, weight, tier int) plan.Job {
	return plan.Job{ID: id, Kind: "fake", Shard: "default", Tier: tier, Weight: weight}
}

func planOf(jobs ...plan.Job) *plan.Plan {
	return &plan.Plan{Version: plan.Version, Datacenters: map[string]schema.Datacenter{}, Jobs: jobs}
}

func newExecutor(k *fakeKind, opts ...executor.Option) *executor.Executor {
	return executor.New(append([]executor.Option{
		executor.WithKind("fake", k.new),
		executor.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		executor.WithBackoff(10*time.Millisecond, 40*time.Millisecond),
	}, opts...)...)
}

// waitState waits until job id has the state.
func waitState(t *testing.T, ex *executor.Executor, id, state string) metrics.Status {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m := ex.Registry().Lookup(id); m != nil {
			if st := m.Status(); st.State == state {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never %s", id, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestApply applies plans in a row and checks what each starts, stops,
// restarts, updates in place and keeps, and that the runners saw exactly
// that.
func TestApply(t *testing.T) {
	k := &fakeKind{}
	ex := newExecutor(k)
	ctx, cancel := context.WithCancel(context.Background())
	defer ex.Stop()
	defer cancel()

	steps := []struct {
		plan *plan.Plan
		want executor.Change
	}{
		{planOf(job("a", 1, 1), job("b", 1, 1), job("c", 1, 4)),
			executor.Change{Started: []string{"a", "b", "c"}}},
		{planOf(job("a", 1, 1), job("b", 2, 1), job("c", 2, 4), job("d", 1, 1)),
			executor.Change{Started: []string{"d"}, Restarted: []string{"b"}, Updated: []string{"c"}, Kept: []string{"a"}}},
		{planOf(job("b", 2, 1), job("c", 2, 4)),
			executor.Change{Stopped: []string{"a", "d"}, Kept: []string{"b", "c"}}},
	}
	for i, s := range steps {
		got := ex.Apply(ctx, s.plan)
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Fatalf("step %d: change (-want +got):\n%s", i+1, diff)
		}
		for _, j := range s.plan.Jobs {
			waitState(t, ex, j.ID, metrics.StateRunning)
		}
	}
	ex.Stop()
	want := map[string]int{
		"start a v1": 1, "start b v1": 1, "start c v1": 1, "start d v1": 1, "start b v2": 1, "update c v2": 1,
		"stop a": 1, "stop b": 2, "stop c": 1, "stop d": 1,
	}
	got := map[string]int{}
	for _, e := range k.events() {
		got[e]++
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("what the runners did (-want +got):\n%s", diff)
	}
}

// TestFailingJobRestarts: a runner that fails is started again after the
// backoff, shown as error with its reason meanwhile, and never takes the
// other jobs down; a shard's executor runs only that shard's jobs.
func TestFailingJobRestarts(t *testing.T) {
	k := &fakeKind{}
	ex := newExecutor(k, executor.WithShard("default"))
	ctx, cancel := context.WithCancel(context.Background())
	defer ex.Stop()
	defer cancel()
	other := job("elsewhere", 1, 1)
	other.Shard = "other"
	ex.Apply(ctx, planOf(job("ok", 1, 1), job("broken", -1, 1), other))
	waitState(t, ex, "ok", metrics.StateRunning)
	st := waitState(t, ex, "broken", metrics.StateError)
	if st.Error != "broken on purpose" {
		t.Fatalf("broken job's error = %q", st.Error)
	}
	deadline := time.Now().Add(5 * time.Second)
	for starts := 0; starts < 3; {
		starts = 0
		for _, e := range k.events() {
			if e == "start broken v-1" {
				starts++
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("broken job started %d times, want it retried", starts)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ex.Registry().Lookup("elsewhere") != nil {
		t.Fatal("a job of another shard runs here")
	}
	if st := ex.Registry().Lookup("ok").Status(); st.State != metrics.StateRunning {
		t.Fatalf("the healthy job is %s", st.State)
	}
}
