package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// TestRunReload changes the definitions under a running `ferry run`, once
// announced by SIGHUP and once found by --watch: a new mirror's jobs start
// and mirror while the untouched jobs keep running (same start time); an
// invalid change is printed with its position and the running plan stays.
func TestRunReload(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		tell func(*process)
	}{
		{"SIGHUP", nil, func(p *process) { p.cmd.Process.Signal(syscall.SIGHUP) }},
		{"watch", []string{"--watch"}, func(*process) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pair := devtest.Pair(t)
			dir := t.TempDir()
			writeDefs(t, dir, pair, `"a.events": {partitions: 1, tier: 1}`)
			p := startFerry(t, dir, nil, append([]string{"run", "."}, tc.args...)...)
			running := func(n int) func(map[string]metrics.Status) bool {
				return func(jobs map[string]metrics.Status) bool {
					for _, st := range jobs {
						if st.State != metrics.StateRunning {
							return false
						}
					}
					return len(jobs) == n
				}
			}
			before := p.waitFor(t, 30*time.Second, "a.events' two jobs running", running(2))

			writeDefs(t, dir, pair, `"a.events": {partitions: 1, tier: 1}
	"b.events": {partitions: 2, tier: 2}`)
			tc.tell(p)
			after := p.waitFor(t, 30*time.Second, "four jobs running", running(4))
			for id, st := range before {
				if !after[id].Started.Equal(st.Started) {
					t.Errorf("%s was restarted (started %v, now %v); it did not change", id, st.Started, after[id].Started)
				}
			}
			for _, id := range []string{"mirror:b.events:dc1-dc2", "mirror:b.events:dc2-dc1"} {
				if _, ok := after[id]; !ok {
					t.Errorf("job %s not started; jobs: %v", id, after)
				}
			}
			mirrorsOne(t, pair, "b.events")

			writeDefs(t, dir, pair, `"a.events": {partitions: 1, tier: 1}
	"b.events": {partitions: 2, tier: 5}`)
			tc.tell(p)
			const want = `pipelines.cue:10:36: mirrors."b.events".tier: invalid tier 5 (tiers are 1 to 4)`
			for deadline := time.Now().Add(20 * time.Second); !strings.Contains(p.logs.String(), want); time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("no line %q in ferry run's output:\n%s", want, p.logs)
				}
			}
			if !strings.Contains(p.logs.String(), "the changed definitions are invalid; the running plan is kept") {
				t.Errorf("ferry run does not say it kept the running plan:\n%s", p.logs)
			}
			kept := p.waitFor(t, 5*time.Second, "four jobs running", running(4))
			for id, st := range after {
				if !kept[id].Started.Equal(st.Started) {
					t.Errorf("%s was restarted by an invalid change", id)
				}
			}
		})
	}
}

// mirrorsOne writes a record to topic in dc1 and waits for it in dc2.
func mirrorsOne(t *testing.T, pair *devenv.Pair, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dc1, err := kgo.NewClient(kgo.SeedBrokers(pair.DC1.Addr()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer dc1.Close()
	if err := dc1.ProduceSync(ctx, &kgo.Record{Value: []byte("after the reload")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dc2, err := kgo.NewClient(kgo.SeedBrokers(pair.DC2.Addr()), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer dc2.Close()
	fs := dc2.PollFetches(ctx)
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "after the reload" {
		t.Fatalf("dc2's %s holds %d records (%v), want the one written to dc1", topic, len(recs), fs.Errors())
	}
}
