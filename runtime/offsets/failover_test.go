package offsets_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/offsets"
)

// consume reads n records of the topic in dc as a member of group, from
// the group's committed offsets (the start when it has none), commits
// exactly what it read and leaves the group.
func (w *world) consume(dc, group string, n int) []*kgo.Record {
	w.t.Helper()
	cl, err := kgo.NewClient(append(w.opts(dc),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(w.topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit())...)
	if err != nil {
		w.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollRecords(ctx, n-len(got))
		if ctx.Err() != nil {
			w.t.Fatalf("group %s read %d records in %s, want %d", group, len(got), dc, n)
		}
		if err := fs.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			w.t.Fatal(err)
		}
		got = append(got, fs.Records()...)
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		w.t.Fatal(err)
	}
	return got
}

// failover checks what the group meets in dc2 after translation: once
// mirroring has caught up, its consumer reads every record it had not
// consumed in dc1 (none missing) and re-reads exactly the predicted
// number of records.
func (w *world) failover(group string, consumed map[id]bool, res []offsets.Partition) {
	w.t.Helper()
	w.catchUp()
	final := w.read("dc2")
	var want []*kgo.Record
	var predicted int64
	for _, r := range res {
		predicted += r.Rereads
		for _, rec := range final[r.Partition] {
			// An untranslated partition starts where the consumer's reset
			// policy says: here, at the start.
			if rec.Offset >= r.Target {
				want = append(want, rec)
			}
		}
	}
	got := w.consume("dc2", group, len(want))
	read := map[id]int{}
	var rereads int64
	for _, rec := range got {
		i := idOf(rec, "dc2")
		read[i]++
		if consumed[i] {
			rereads++
		}
	}
	var missing []id
	for _, recs := range final {
		for _, rec := range recs {
			if i := idOf(rec, "dc2"); !consumed[i] && read[i] == 0 {
				missing = append(missing, i)
			}
		}
	}
	for i, n := range read {
		if n > 1 {
			w.t.Errorf("%v read %d times in dc2", i, n)
		}
	}
	if len(missing) > 0 {
		w.t.Errorf("missing in dc2 after failover: %v", missing)
	}
	if rereads != predicted {
		w.t.Errorf("read %d records again in dc2, translation predicted %d", rereads, predicted)
	}
	w.t.Logf("consumed %d in dc1; in dc2 read %d, of which %d again (predicted %d)", len(consumed), len(got), rereads, predicted)
}

func ids(recs []*kgo.Record, dc string) map[id]bool {
	out := map[id]bool{}
	for _, r := range recs {
		out[idOf(r, dc)] = true
	}
	return out
}

// writeAll writes n1 client records to every partition of dc1, n2 to
// every partition of dc2.
func (w *world) writeAll(n1, n2 int) {
	for p := range w.parts {
		w.write("dc1", p, n1)
		w.write("dc2", p, n2)
	}
}

// move translates the group from dc1 to dc2 and commits the result there.
func (w *world) move(group string) []offsets.Partition {
	w.t.Helper()
	tr := w.translator()
	res, err := tr.TranslateGroup(w.ctx, group, w.topics())
	if err != nil {
		w.t.Fatal(err)
	}
	if err := tr.Commit(w.ctx, group, res); err != nil {
		w.t.Fatal(err)
	}
	return res
}

func TestFailoverBothWays(t *testing.T) {
	w := newWorld(t, nil, "orders.events", 3)
	for range 4 {
		w.writeAll(4, 3)
		w.mirrorAll()
	}
	consumed := ids(w.consume("dc1", "billing", 60), "dc1")
	w.writeAll(5, 5)
	w.mirrorAll()
	w.failover("billing", consumed, w.move("billing"))
}

// TestFailoverMirrorLags translates while both directions lag: dc1's
// consumer has not seen some of dc2's records yet, and some records it
// consumed have not reached dc2 yet (they are read again there, as
// predicted).
func TestFailoverMirrorLags(t *testing.T) {
	w := newWorld(t, nil, "orders.events", 3)
	for round := range 4 {
		for p := range w.parts {
			w.write("dc1", p, 4)
			w.write("dc2", p, 3)
			w.mirror("dc1", "dc2", p, 3, false)
			w.mirror("dc2", "dc1", p, 2+round%2, false)
		}
	}
	consumed := ids(w.consume("dc1", "billing", 50), "dc1")
	w.writeAll(3, 3)
	for p := range w.parts {
		w.mirror("dc2", "dc1", p, 2, false)
	}
	res := w.move("billing")
	mustPend(t, res)
	w.failover("billing", consumed, res)
}

// mustPend fails unless some consumed records are still on their way to
// the target: the case the test is about.
func mustPend(t *testing.T, res []offsets.Partition) {
	t.Helper()
	for _, r := range res {
		if r.Pending > 0 {
			return
		}
	}
	t.Fatalf("no consumed record is on its way to dc2: %+v", res)
}

// TestFailoverMirrorKilled translates while the mirror into dc2 lies dead
// mid-transaction: its copies are written but not committed, holding dc2's
// last stable offset back, and dc2's clients write after them. The
// successor aborts the transaction and copies again; the group misses
// nothing and re-reads what was predicted.
func TestFailoverMirrorKilled(t *testing.T) {
	w := newWorld(t, nil, "orders.events", 3)
	for range 3 {
		w.writeAll(4, 3)
		w.mirrorAll()
	}
	w.writeAll(3, 3)
	consumed := ids(w.consume("dc1", "billing", 60), "dc1")
	w.crashMirror("dc1", "dc2")
	w.writeAll(2, 2)
	hw, err := kadm.NewClient(w.clients["dc2"]).ListEndOffsets(w.ctx, w.topic)
	if err != nil {
		t.Fatal(err)
	}
	if stable := w.ends("dc2"); stable[0] >= hw[w.topic][0].Offset {
		t.Fatalf("dc2[0]: last stable offset %d, high watermark %d: no transaction holds it back", stable[0], hw[w.topic][0].Offset)
	}
	res := w.move("billing")
	mustPend(t, res)
	w.failover("billing", consumed, res)
}

func TestCommitRefusesActiveGroup(t *testing.T) {
	w := newWorld(t, nil, "orders.events", 1)
	w.write("dc1", 0, 3)
	w.write("dc2", 0, 2)
	w.mirrorAll()
	w.commit("dc1", "billing", map[int32]int64{0: 2})

	member := w.client("dc2", kgo.ConsumerGroup("billing"), kgo.ConsumeTopics(w.topic))
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	member.PollFetches(ctx) // joins the group
	adm := kadm.NewClient(w.clients["dc2"])
	for {
		ds, err := adm.DescribeGroups(ctx, "billing")
		if err != nil {
			t.Fatal(err)
		}
		if ds["billing"].State == "Stable" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	tr := w.translator()
	res, err := tr.TranslateGroup(w.ctx, "billing", w.topics())
	if err != nil {
		t.Fatal(err)
	}
	err = tr.Commit(w.ctx, "billing", res)
	want := "group billing is active in dc2 (1 member): stop its consumers there, then translate and apply again"
	if err == nil || err.Error() != want {
		t.Fatalf("commit to an active group: %v, want %q", err, want)
	}
	var active *offsets.ActiveError
	if !errors.As(err, &active) {
		t.Fatalf("%T is not an *ActiveError", err)
	}
	os, err := adm.FetchOffsets(w.ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := os.Lookup(w.topic, 0); ok && strings.HasPrefix(o.Metadata, "ferry:") {
		t.Fatalf("translated offset committed to the active group: %+v", o)
	}
}
