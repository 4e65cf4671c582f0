package offsets_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/offsets"
)

// TestSyncKeepsInactiveGroupsTranslated runs the offsets jobs of both
// directions, compiled from `groups:`, while the test mirrors: a matching
// group that consumed in dc1 gets its translated offsets in dc2 and keeps
// them up to date as it goes on; the reverse job leaves dc1 alone; a group
// that does not match, and a matching group active in dc2, are never
// touched. Failing over then reads everything once, as predicted.
func TestSyncKeepsInactiveGroupsTranslated(t *testing.T) {
	w := newWorld(t, nil, "orders.events", 3)
	p := w.plan("billing-*")
	for range 3 {
		w.writeAll(5, 4)
		w.mirrorAll()
	}
	consumed := ids(w.consume("dc1", "billing-eu", 50), "dc1")
	w.consume("dc1", "reports", 10)
	w.commit("dc1", "billing-us", map[int32]int64{0: 3})
	active := w.client("dc2", kgo.ConsumerGroup("billing-us"), kgo.ConsumeTopics(w.topic), kgo.DisableAutoCommit())
	w.waitStable("dc2", "billing-us", active)

	stop := w.runExecutor(p, plan.KindOffsets, offsets.NewSync)
	w.waitCommitted("dc2", "billing-eu", w.targets("billing-eu"))

	// The group goes on in dc1; dc2 follows.
	maps.Copy(consumed, ids(w.consume("dc1", "billing-eu", 12), "dc1"))
	w.writeAll(2, 2)
	w.mirrorAll()
	before := w.committed("dc1", "billing-eu")
	want := w.targets("billing-eu")
	w.waitCommitted("dc2", "billing-eu", want)
	time.Sleep(time.Second) // rounds of the reverse job: dc1 must stay as the group left it
	if got := w.committed("dc1", "billing-eu"); !maps.Equal(got, before) {
		t.Errorf("the reverse job moved billing-eu in dc1: %v, was %v", got, before)
	}
	for _, g := range []string{"reports", "billing-us"} {
		if got := w.committed("dc2", g); len(got) > 0 {
			t.Errorf("group %s has offsets in dc2: %v", g, got)
		}
	}
	stop()
	parts, err := w.translator().TranslateGroup(w.ctx, "billing-eu", w.topics())
	if err != nil {
		t.Fatal(err)
	}
	w.failover("billing-eu", consumed, parts)
}

// targets translates the group from dc1 to dc2, without committing.
func (w *world) targets(group string) map[int32]int64 {
	w.t.Helper()
	res, err := w.translator().TranslateGroup(w.ctx, group, w.topics())
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, r := range res {
		if r.Translated() {
			out[r.Partition] = r.Target
		}
	}
	return out
}

// committed returns the group's committed offsets in dc.
func (w *world) committed(dc, group string) map[int32]int64 {
	w.t.Helper()
	os, err := kadm.NewClient(w.clients[dc]).FetchOffsets(w.ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil
	}
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[int32]int64{}
	os.Each(func(o kadm.OffsetResponse) { out[o.Partition] = o.At })
	return out
}

// waitCommitted waits until the group's committed offsets in dc are want.
func (w *world) waitCommitted(dc, group string, want map[int32]int64) {
	w.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !maps.Equal(w.committed(dc, group), want) {
		if time.Now().After(deadline) {
			w.t.Fatalf("group %s in %s: %v, want %v", group, dc, w.committed(dc, group), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitStable polls with member until the group is stable in dc.
func (w *world) waitStable(dc, group string, member *kgo.Client) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	for {
		member.PollFetches(ctx)
		ds, err := kadm.NewClient(w.clients[dc]).DescribeGroups(ctx, group)
		if err != nil {
			w.t.Fatal(err)
		}
		if ds[group].State == "Stable" {
			return
		}
	}
}
