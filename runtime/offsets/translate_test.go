package offsets_test

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/offsets"
)

// truth is the brute-force view of one partition: what a group that
// committed c in dc1 consumed, and for any target offset in dc2 what a
// consumer starting there would miss and read again.
type truth struct {
	consumed map[id]bool
	b        []*kgo.Record // dc2's records of the partition
	pending  int64         // consumed records not in dc2 yet: they arrive after any target
}

func newTruth(a, b []*kgo.Record, c int64) truth {
	tr := truth{consumed: map[id]bool{}, b: b}
	for _, r := range a {
		if r.Offset < c {
			tr.consumed[idOf(r, "dc1")] = true
		}
	}
	inB := map[id]bool{}
	for _, r := range b {
		inB[idOf(r, "dc2")] = true
	}
	for i := range tr.consumed {
		if !inB[i] {
			tr.pending++
		}
	}
	return tr
}

// missed counts the unconsumed records before target: a consumer starting
// there would never read them.
func (tr truth) missed(target int64) int {
	n := 0
	for _, r := range tr.b {
		if r.Offset < target && !tr.consumed[idOf(r, "dc2")] {
			n++
		}
	}
	return n
}

// rereads counts the consumed records a consumer starting at target reads
// again.
func (tr truth) rereads(target int64) int64 {
	n := tr.pending
	for _, r := range tr.b {
		if r.Offset >= target && tr.consumed[idOf(r, "dc2")] {
			n++
		}
	}
	return n
}

// fewest tries every target, each record's offset and the end, and returns
// the fewest re-reads of those that miss nothing.
func (tr truth) fewest(end int64) int64 {
	best := tr.rereads(end)
	if tr.missed(end) > 0 {
		best = 1 << 62
	}
	for _, r := range tr.b {
		if tr.missed(r.Offset) == 0 {
			best = min(best, tr.rereads(r.Offset))
		}
	}
	return best
}

// TestTranslateRandomInterleavings writes random interleavings of client
// records and mirroring (both ways, lagging, with aborted mirror
// transactions) into small partitions, commits random offsets in dc1, and
// checks every translation to dc2 against the brute force: nothing
// missed, as few re-reads as possible, and the predicted re-reads are
// those a consumer meets once mirroring has caught up.
func TestTranslateRandomInterleavings(t *testing.T) {
	pair := startPair(t)
	cases := 0
	for seed := int64(1); seed <= 30; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			cases += checkRandom(t, seed, build(t, fmt.Sprintf("prop-%d", seed), 8, pair.DC1, pair.DC2))
		})
	}
	t.Logf("%d partitions translated and checked against the brute force", cases)
}

// TestTranslateRandomInterleavingsThreeDatacenters is the same with a
// third datacenter whose records reach dc1 and dc2 on their own, each
// direction at its own pace.
func TestTranslateRandomInterleavingsThreeDatacenters(t *testing.T) {
	pair := startPair(t)
	dc3 := devtest.Kafka(t, "dc3")
	cases := 0
	for seed := int64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			cases += checkRandom(t, seed, build(t, fmt.Sprintf("prop3-%d", seed), 6, pair.DC1, pair.DC2, dc3))
		})
	}
	t.Logf("%d partitions translated and checked against the brute force", cases)
}

// checkRandom fills the world's partitions with a random interleaving of
// the seed, commits random offsets in dc1 and checks the translation to
// dc2 of each; it returns how many partitions it checked.
func checkRandom(t *testing.T, seed int64, w *world) int {
	rng := rand.New(rand.NewSource(seed))
	// Operations: a client write in each datacenter, mirroring in each
	// direction, an aborted mirror transaction. Their weights vary by
	// seed: a datacenter may rarely write, a direction lag far behind.
	type op struct{ from, to string }
	var ops []op
	var weights []int
	for _, dc := range w.dcs {
		weight := rng.Intn(5)
		if dc == "dc1" {
			weight++ // the group has something to consume
		}
		ops, weights = append(ops, op{from: dc}), append(weights, weight)
	}
	for _, from := range w.dcs {
		for _, to := range w.dcs {
			if from != to {
				ops, weights = append(ops, op{from, to}), append(weights, rng.Intn(4))
			}
		}
	}
	abort := len(ops)
	weights = append(weights, rng.Intn(2))
	for p := range w.parts {
		for range 10 + rng.Intn(40) {
			i := pick(rng, weights)
			switch {
			case i == abort:
				o := ops[len(w.dcs)+rng.Intn(len(ops)-len(w.dcs))]
				w.mirror(o.from, o.to, p, 1+rng.Intn(3), true)
			case ops[i].to == "":
				w.write(ops[i].from, p, 1+rng.Intn(3))
			default:
				w.mirror(ops[i].from, ops[i].to, p, 1+rng.Intn(4), false)
			}
		}
	}
	ends := w.ends("dc1")
	committed := map[int32]int64{}
	for p := range w.parts {
		switch rng.Intn(6) {
		case 0: // no commit
		case 1:
			committed[p] = 0
		case 2:
			committed[p] = ends[p]
		default:
			committed[p] = rng.Int63n(ends[p] + 1)
		}
	}
	group := fmt.Sprint("g", seed)
	if len(committed) > 0 {
		w.commit("dc1", group, committed)
	}
	var opts []offsets.Option
	if seed%2 == 1 { // tiny fetches: many probes, many chunks
		opts = append(opts, offsets.WithFetchBytes(1024))
	}
	res, err := w.translator(opts...).TranslateGroup(w.ctx, group, w.topics())
	if err != nil {
		t.Fatal(err)
	}
	a, b, endsB := w.read("dc1"), w.read("dc2"), w.ends("dc2")
	if len(res) != int(w.parts) {
		t.Fatalf("%d partitions reported, want %d", len(res), w.parts)
	}
	truths := map[int32]truth{}
	shown := false
	for _, r := range res {
		c, ok := committed[r.Partition]
		if !ok {
			if r.Translated() || r.Source != -1 {
				t.Errorf("partition %d has no commit but was translated: %+v", r.Partition, r)
			}
			continue
		}
		tr := newTruth(a[r.Partition], b[r.Partition], c)
		truths[r.Partition] = tr
		if r.Source != c || r.Target < 0 || r.Target > endsB[r.Partition] {
			t.Errorf("partition %d: %+v, committed %d, end in dc2 %d", r.Partition, r, c, endsB[r.Partition])
		}
		if n := tr.missed(r.Target); n > 0 {
			t.Errorf("partition %d: target %d misses %d unconsumed records (%+v)", r.Partition, r.Target, n, r)
		}
		if got, want := r.Rereads, tr.rereads(r.Target); got != want {
			t.Errorf("partition %d: predicted %d re-reads, target %d gives %d", r.Partition, got, r.Target, want)
		}
		if got, best := r.Rereads, tr.fewest(endsB[r.Partition]); got != best {
			t.Errorf("partition %d: %d re-reads, the fewest possible is %d (%+v)", r.Partition, got, best, r)
		}
		if r.Pending != tr.pending {
			t.Errorf("partition %d: %d pending, want %d", r.Partition, r.Pending, tr.pending)
		}
		if t.Failed() && !shown {
			shown = true // the first failing partition, as read and as the mirror wrote it
			t.Logf("partition %d in dc1:%s", r.Partition, show(a[r.Partition]))
			t.Logf("partition %d in dc2:%s", r.Partition, show(b[r.Partition]))
			t.Logf("partition %d in dc2 as written:%s", r.Partition, show(w.logs["dc2"][r.Partition]))
		}
	}
	// Once mirroring catches up, a consumer from the target reads every
	// record the group had not consumed, and re-reads exactly the
	// predicted ones.
	w.mirrorAll()
	final := w.read("dc2")
	for _, r := range res {
		if !r.Translated() {
			continue
		}
		var rereads int64
		var missed []id
		for _, rec := range final[r.Partition] {
			consumed := truths[r.Partition].consumed[idOf(rec, "dc2")]
			switch {
			case rec.Offset >= r.Target && consumed:
				rereads++
			case rec.Offset < r.Target && !consumed:
				missed = append(missed, idOf(rec, "dc2"))
			}
		}
		if rereads != r.Rereads || len(missed) > 0 {
			t.Errorf("partition %d after mirroring: %d re-reads (predicted %d), missed %v", r.Partition, rereads, r.Rereads, missed)
		}
	}
	return len(truths)
}

// pick draws an index with probability proportional to its weight.
func pick(rng *rand.Rand, weights []int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := rng.Intn(total)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	return len(weights) - 1
}

// show lists records as offset:origin/seq (no origin: the datacenter's
// own), for a failure's log.
func show(recs []*kgo.Record) string {
	var b strings.Builder
	for _, r := range recs {
		o, _ := origin(r)
		fmt.Fprintf(&b, " %d:%s/%d", r.Offset, o.origin, o.seq)
	}
	return b.String()
}
