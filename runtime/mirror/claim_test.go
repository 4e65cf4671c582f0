package mirror_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/checkpoint"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestJobLeavesWhileClaiming adds a job to a running lane and removes it
// while its slot reads back the claims it committed (the reads of the
// target's checkpoints are held up meanwhile): the slot must release the
// partitions it claimed for a job no longer there, so that whoever runs
// the job next takes them at once rather than wait for the claim to age.
func TestJobLeavesWhileClaiming(t *testing.T) {
	w := newWorld(t, map[string]schema.Mirror{
		"stay":    {Partitions: 1, Tier: 1},
		"leaving": {Partitions: 1, Tier: 1},
	})
	const job = "mirror:leaving:dc1-dc2"
	withLeaving := w.plan
	without := *w.plan
	without.Jobs = slices.DeleteFunc(slices.Clone(without.Jobs), func(j plan.Job) bool { return j.Mirror != nil && j.Mirror.Topic == "leaving" })
	w.plan = &without
	ex := w.run()
	waitAssignedJob(ex.Registry(), "mirror:stay:dc1-dc2")

	// From the first committed transaction on (the claims': nothing else
	// commits in dc2 meanwhile), dc2 answers no fetch until released.
	var claimed, holding atomic.Bool
	release, held := make(chan struct{}), make(chan struct{})
	commits := w.pair.DC2.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Observe: true, Count: -1, When: func(req kmsg.Request) bool {
		if req.(*kmsg.EndTxnRequest).Commit {
			claimed.Store(true)
		}
		return false
	}})
	defer commits.Remove()
	w.pair.DC2.Cluster.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		w.pair.DC2.Cluster.KeepControl()
		if claimed.Load() {
			if holding.CompareAndSwap(false, true) {
				close(held)
			}
			w.pair.DC2.Cluster.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	defer func() {
		claimed.Store(false)
		if holding.CompareAndSwap(false, true) {
			close(held)
		}
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	ctx := context.Background()
	ex.Apply(ctx, withLeaving)
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("no read of the checkpoints after a commit: the claims were never read back")
	}
	ex.Apply(ctx, &without) // the job leaves while its claims are read back
	claimed.Store(false)
	close(release)

	var last []checkpoint.Entry
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		hist := w.checkpoints(job, func(key string) bool { return key == job+"/0" })
		if last = hist[job+"/0"]; len(last) >= 2 && released(t, last[len(last)-1]) {
			break
		}
	}
	if len(last) == 0 {
		t.Fatalf("no checkpoint of %s/0: the partition was never claimed, the test did not test", job)
	}
	var claim map[string]any
	if err := json.Unmarshal(last[0].Value, &claim); err != nil || claim["base"] == nil {
		t.Fatalf("the first checkpoint of %s/0, %s, is not the slot's claim", job, last[0].Value)
	}
	if len(last) != 2 || !released(t, last[1]) {
		t.Fatalf("checkpoints of %s/0 after its claim: %d, the last %s; want one release: the partition claimed for a job that left was not released", job, len(last)-1, last[len(last)-1].Value)
	}
}

// released reports whether a checkpoint record is a release.
func released(t *testing.T, e checkpoint.Entry) bool {
	t.Helper()
	var v struct{ Released bool }
	if err := json.Unmarshal(e.Value, &v); err != nil {
		t.Fatalf("checkpoint %q: %v", e.Value, err)
	}
	return v.Released
}
