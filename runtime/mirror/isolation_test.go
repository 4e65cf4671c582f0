package mirror_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/mirror"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestIsolation runs Tier 1 topics that share their lane, and so their
// slots' transactions, with four bad ones: a record over the target's
// max.message.bytes, another partition count in the target, a target
// partition that refuses every write, and a target topic deleted under
// ferry. The good topics' records all arrive once and within budget
// (asserted without the race detector), each bad topic shows what is
// wrong with it, and the refusing partition aborts its slot's
// transactions at its first failure only (its companion's after that).
func TestIsolation(t *testing.T) {
	mirrors := map[string]schema.Mirror{
		"bad.poison":   {Partitions: 4, Tier: 1},
		"bad.mismatch": {Partitions: 4, Tier: 1},
		"bad.refused":  {Partitions: 4, Tier: 1},
		"bad.deleted":  {Partitions: 4, Tier: 1},
	}
	var good []string
	for i := 0; i < 16; i++ {
		name := fmt.Sprintf("good.t%02d", i)
		mirrors[name] = schema.Mirror{Partitions: 4, Tier: 1}
		good = append(good, name)
	}
	w := newWorld(t, mirrors)
	w.createTopic("dc2", "bad.poison", 4, map[string]string{"max.message.bytes": "2000"})
	w.createTopic("dc2", "bad.mismatch", 2, nil)
	// Aborted transactions that wrote to the refused partition, by
	// transactional ID.
	aborts := map[string]int{}
	touched := map[string]bool{} // a transaction of the ID wrote to it since its last end
	var amu sync.Mutex
	w.pair.DC2.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "bad.refused", Partitions: []int32{1}, Count: -1, When: func(req kmsg.Request) bool {
		if id := req.(*kmsg.ProduceRequest).TransactionID; id != nil {
			amu.Lock()
			touched[*id] = true
			amu.Unlock()
		}
		return false // observed only: the fault below answers
	}})
	w.pair.DC2.Cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		w.pair.DC2.Cluster.KeepControl()
		r := req.(*kmsg.EndTxnRequest)
		amu.Lock()
		if !r.Commit && touched[r.TransactionalID] {
			aborts[r.TransactionalID]++
		}
		delete(touched, r.TransactionalID)
		amu.Unlock()
		return nil, nil, false
	})
	// Every write to one partition of bad.refused is refused, retriably,
	// for ever: as if its leader were gone.
	refused := w.pair.DC2.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "bad.refused", Partitions: []int32{1}, Err: kerr.NotLeaderForPartition, Count: -1})
	defer refused.Remove()
	ex := w.run()
	for _, topic := range append([]string{"bad.poison", "bad.refused", "bad.deleted"}, good...) {
		w.waitTopic("dc2", topic)
	}
	time.Sleep(time.Second) // the slots took their partitions

	// Traffic on every topic for 8 s; the target topic bad.deleted goes
	// away 2 s in, and a record too large for bad.poison's target goes in
	// every second.
	src := w.client("dc1", kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := context.Background()
	var wg sync.WaitGroup
	produced := map[string]int{}
	var mu sync.Mutex
	stop := time.Now().Add(8 * time.Second)
	for _, topic := range append([]string{"bad.poison", "bad.refused", "bad.deleted"}, good...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				v := []byte(fmt.Sprintf("%s %d", topic, i))
				if topic == "bad.poison" && i%20 == 10 {
					v = make([]byte, 5000)
					_, _ = rand.Read(v) // incompressible
				}
				r := &kgo.Record{Topic: topic, Partition: int32(i % 4), Value: v, Timestamp: time.Now()}
				if err := src.ProduceSync(ctx, r).FirstErr(); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				produced[topic]++
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	time.Sleep(2 * time.Second)
	if err := w.pair.DC2.Cluster.DeleteTopic("bad.deleted"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	for _, topic := range good {
		recs := w.consume("dc2", topic, produced[topic], 30*time.Second)
		if len(recs) != produced[topic] {
			t.Fatalf("%s: %d copies of %d records", topic, len(recs), produced[topic])
		}
		st := ex.Registry().Lookup("mirror:" + topic + ":dc1-dc2").Status()
		late := st.Latency.P99 > st.BudgetMs && !raceEnabled
		if st.State != metrics.StateRunning || late || st.Counters[metrics.Records] != int64(produced[topic]) {
			t.Errorf("%s: %s, p99 %.1f ms (max %.1f) of a %.0f ms budget, %d records: a bad topic held it up", topic, st.State, st.Latency.P99, st.Latency.Max, st.BudgetMs, st.Counters[metrics.Records])
		}
	}

	// Each bad topic says what is wrong with it (between the restarts of
	// its job).
	for topic, want := range map[string]string{
		"bad.mismatch": "has 2 partitions in dc2 but the definition declares 4",
		"bad.refused":  "partition 1 of bad.refused cannot be written to dc2",
	} {
		var st metrics.Status
		for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if st = status(ex, topic); st.State == metrics.StateError && strings.Contains(st.Error, want) {
				break
			}
		}
		if st.State != metrics.StateError || !strings.Contains(st.Error, want) {
			t.Errorf("%s: %s %q, want an error with %q", topic, st.State, st.Error, want)
		}
	}
	// Once evicted, bad.refused's partition is evicted again at its first
	// failure, without holding its slot for a retry at every start of its
	// job (it retried 5 in a run of this test before).
	if st := status(ex, "bad.refused"); st.Counters[metrics.Retries] > 1 {
		t.Errorf("bad.refused: its slot retried %d transactions for it, want at most 1", st.Counters[metrics.Retries])
	}
	// The refused partition aborts its slot's transactions at its first
	// failure only (twice when it was alone in the transaction, retried
	// once): the slot hands it to its companion, whose
	// transactions it aborts from then on (the slot aborted one at every
	// start before, and its partitions waited).
	amu.Lock()
	inCompanions := 0
	for id, n := range aborts {
		switch {
		case strings.HasSuffix(id, ".q"):
			inCompanions += n
		case n > 2:
			t.Errorf("slot %s aborted %d transactions with the refused partition, want at most 2 (by transactional ID: %v)", id, n, aborts)
		}
	}
	amu.Unlock()
	if inCompanions == 0 {
		t.Errorf("no companion aborted a transaction of bad.refused's partition: it was not quarantined (aborts: %v)", aborts)
	}
	// Nor was its job started again: its other partitions were never
	// released (every start released them in their slots, and the
	// partitions sharing those slots waited).
	hist := w.checkpoints("mirror:bad.refused:dc1-dc2", func(string) bool { return true })
	for key, es := range hist {
		for _, e := range es {
			var pos struct{ Released bool }
			if err := json.Unmarshal(e.Value, &pos); err == nil && pos.Released {
				t.Errorf("bad.refused: %s was released (%s): its job started again", key, e.Value)
			}
		}
	}
	poisoned := (produced["bad.poison"] + 9) / 20
	if st := status(ex, "bad.poison"); st.Counters[metrics.DeadLetters] != int64(poisoned) {
		t.Errorf("bad.poison: %d dead letters, want %d", st.Counters[metrics.DeadLetters], poisoned)
	}
	if n := len(w.consume("dc2", "bad.poison", produced["bad.poison"]-poisoned, 30*time.Second)); n != produced["bad.poison"]-poisoned {
		t.Errorf("bad.poison: %d copies, want %d", n, produced["bad.poison"]-poisoned)
	}
	// bad.deleted is made again by its job's next start and gets the
	// records written since it went away: its checkpoint did not move past
	// them.
	last := []byte(fmt.Sprintf("bad.deleted %d", produced["bad.deleted"]-1))
	cl := w.client("dc2", kgo.ConsumeTopics("bad.deleted"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	wait, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for found := false; !found; {
		fs := cl.PollFetches(wait)
		if wait.Err() != nil {
			t.Fatalf("bad.deleted: %q not copied after the topic came back", last)
		}
		fs.EachRecord(func(r *kgo.Record) { found = found || bytes.Equal(r.Value, last) })
	}
}

// status is the figures of topic's job from dc1 to dc2.
func status(ex *executor.Executor, topic string) metrics.Status {
	return ex.Registry().Lookup("mirror:" + topic + ":dc1-dc2").Status()
}

// TestQuarantine refuses every write to one partition of a topic until the
// slot's companion has taken it (the slot handed it over as it evicted it)
// and failed with it too, then lets writes through. The companion's first
// commit, its claim's, fails: the companion fails the job whose partition
// it was claiming, which starts again. Once the partition was not evicted
// for evictedFor (shortened to 2 s), the companion hands it back to the
// slot at its next commit of it. Every record, written before, during and
// after, arrives once; the partition's checkpoints were written by the
// companion while the slot took no more of its writes, and by the slot
// again at the end.
func TestQuarantine(t *testing.T) {
	const job = "mirror:orders:dc1-dc2"
	const evictedFor = 2 * time.Second
	t.Cleanup(mirror.SetEvictedFor(evictedFor)) // after the world's cleanups
	w := newWorld(t, map[string]schema.Mirror{"orders": {Partitions: 2, Tier: 1}})
	w.createTopic("dc1", "orders", 2, nil)
	w.createTopic("dc2", "orders", 2, nil)
	quarantined := make(chan struct{})
	var once sync.Once
	w.pair.DC2.Cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		w.pair.DC2.Cluster.KeepControl()
		if r := req.(*kmsg.EndTxnRequest); !r.Commit && strings.HasSuffix(r.TransactionalID, ".q") {
			once.Do(func() { close(quarantined) })
		}
		return nil, nil, false
	})
	refused := w.pair.DC2.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Partitions: []int32{1}, Err: kerr.NotLeaderForPartition, Count: -1})
	claimFails := w.pair.DC2.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.InvalidTxnState, When: func(req kmsg.Request) bool {
		r := req.(*kmsg.EndTxnRequest)
		return r.Commit && strings.HasSuffix(r.TransactionalID, ".q")
	}})
	w.run()

	src := w.client("dc1", kgo.RecordPartitioner(kgo.ManualPartitioner()))
	n := 0
	write := func(count int) {
		for range count {
			r := &kgo.Record{Topic: "orders", Partition: int32(n % 2), Value: []byte(fmt.Sprintf("order %d", n))}
			if err := src.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	write(100)
	select {
	case <-quarantined:
	case <-time.After(60 * time.Second):
		t.Fatal("no companion took the refused partition")
	}
	if claimFails.Hits() == 0 {
		t.Error("the companion's first commit did not fail: the test did not test its failure")
	}
	write(100)
	refused.Remove()
	write(100)
	w.consume("dc2", "orders", n, 60*time.Second) // the companion copied them
	time.Sleep(evictedFor)
	write(100)

	recs := w.consume("dc2", "orders", n, 60*time.Second)
	seen := map[string]bool{}
	for _, r := range recs {
		if seen[string(r.Value)] {
			t.Errorf("%q copied twice", r.Value)
		}
		seen[string(r.Value)] = true
	}
	if len(recs) != n {
		t.Fatalf("%d copies of %d records", len(recs), n)
	}
	hist := w.checkpoints(job, func(key string) bool { return key == job+"/1" })
	// The writers of partition 1's checkpoints, each once in a row: the
	// slot, the companion, and the slot again (its claim once handed
	// back, and its copies).
	var writers []string
	for _, e := range hist[job+"/1"] {
		var pos struct{ Writer string }
		if err := json.Unmarshal(e.Value, &pos); err != nil {
			t.Fatal(err)
		}
		who := "slot"
		if strings.HasSuffix(pos.Writer, ".q") {
			who = "companion"
		}
		if len(writers) == 0 || writers[len(writers)-1] != who {
			writers = append(writers, who)
		}
	}
	if want := []string{"slot", "companion", "slot"}; !slices.Equal(writers, want) {
		t.Errorf("partition 1's checkpoints were written by %v in turn, want %v", writers, want)
	}
}
