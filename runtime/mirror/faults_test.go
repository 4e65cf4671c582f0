package mirror_test

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/dlq"
	"github.com/ferry-pipelines/ferry/runtime/headers"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestRetriableProduceErrorsAreSurvived fails produce requests to the
// target with retriable errors and checks that every record still arrives
// once, and none is dead-lettered.
func TestRetriableProduceErrorsAreSurvived(t *testing.T) {
	w := newWorld(t, map[string]schema.Mirror{"payments": {Partitions: 3, Tier: 1}})
	w.createTopic("dc1", "payments", 3, nil)
	w.createTopic("dc2", "payments", 3, nil)
	faults := w.pair.DC2.Cluster.Fault(
		kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "payments", Err: kerr.NotLeaderForPartition, Count: 5},
		kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "payments", Err: kerr.NotEnoughReplicas, Count: 5},
	)
	ex := w.run()
	w.produce("dc1", "payments", 3000)
	recs := w.consume("dc2", "payments", 3000, 60*time.Second)
	if len(recs) != 3000 {
		t.Fatalf("dc2 holds %d records, want 3000 once each", len(recs))
	}
	if faults.Hits() == 0 {
		t.Fatal("no produce request was failed: the test proves nothing")
	}
	st := ex.Registry().Lookup("mirror:payments:dc1-dc2").Status()
	if n := st.Counters[metrics.DeadLetters]; n != 0 {
		t.Fatalf("%d records dead-lettered for retriable errors", n)
	}
}

// TestTooLargeRecordGoesToDLQ writes a record larger than the target topic
// allows between smaller ones: it lands in ferry.dlq with the error headers,
// without aborting a transaction (it is known too large before it is
// written), the records after it are mirrored, and replay re-delivers it
// exactly once after the limit is raised.
func TestTooLargeRecordGoesToDLQ(t *testing.T) {
	w := newWorld(t, map[string]schema.Mirror{"images": {Partitions: 1, Tier: 1}})
	w.createTopic("dc1", "images", 1, nil)
	w.createTopic("dc2", "images", 1, map[string]string{"max.message.bytes": "4000"})
	var aborts atomic.Int32
	w.pair.DC2.Cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		w.pair.DC2.Cluster.KeepControl()
		if !req.(*kmsg.EndTxnRequest).Commit {
			aborts.Add(1)
		}
		return nil, nil, false
	})
	w.run()
	cl := w.client("dc1", kgo.DefaultProduceTopic("images"))
	var recs []*kgo.Record
	for i := 0; i < 20; i++ {
		v := []byte("small " + strconv.Itoa(i))
		if i == 7 {
			v = sizedValue(t, "i", i) // incompressible: over the limit once compressed too
		}
		recs = append(recs, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: v})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got := w.consume("dc2", "images", 19, 60*time.Second)
	var keys []string
	for _, r := range got {
		keys = append(keys, string(r.Key))
	}
	if want := "0 1 2 3 4 5 6 8 9 10 11 12 13 14 15 16 17 18 19"; strings.Join(keys, " ") != want {
		t.Fatalf("dc2 holds keys %v, want %s", keys, want)
	}
	letters := w.consume("dc2", "ferry.dlq", 1, 10*time.Second)
	if len(letters) != 1 {
		t.Fatalf("ferry.dlq holds %d records, want 1", len(letters))
	}
	if n := aborts.Load(); n != 0 {
		t.Errorf("%d transactions aborted in dc2, want none: each held the slot's other partitions up", n)
	}
	want := map[string]string{
		dlq.HeaderTopic: "images", dlq.HeaderPartition: "0", dlq.HeaderOffset: "7",
		dlq.HeaderClass: "MESSAGE_TOO_LARGE", dlq.HeaderJob: "mirror:images:dc1-dc2",
		headers.Origin: "dc1", headers.OriginOffset: "7",
	}
	for k, v := range want {
		if got, _ := header(letters[0], k); got != v {
			t.Errorf("dead letter header %s = %q, want %q", k, got, v)
		}
	}
	if msg, _ := header(letters[0], dlq.HeaderMessage); !strings.Contains(msg, "images") {
		t.Errorf("dead letter message %q does not name the topic", msg)
	}

	opts, err := kafkaconn.Options(w.plan.Datacenters["dc2"])
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	entries, err := dlq.List(ctx, opts, "mirror:images:dc1-dc2")
	if err != nil || len(entries) != 1 || entries[0].Replayed || entries[0].Offset != 7 {
		t.Fatalf("dlq.List = %+v, %v; want one pending entry for offset 7", entries, err)
	}
	if _, err := kadm.NewClient(w.client("dc2")).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr("100000")}}, "images"); err != nil {
		t.Fatal(err)
	}
	// The replay's first transaction ends with an abort while kgo is
	// answered as if it committed, which kgo v1.22 itself was seen to do
	// to a new producer's first transaction: the replay reads it back and
	// delivers the dead letter again.
	var flipped atomic.Int32
	w.pair.DC2.Cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if end := req.(*kmsg.EndTxnRequest); end.Commit && end.TransactionalID == "ferry.mirror:images:dc1-dc2.dlq-replay" && flipped.Add(1) == 1 {
			end.Commit = false
		}
		return nil, nil, false
	})
	for i, wantReplayed := range []int{1, 0} {
		res, err := dlq.Replay(ctx, opts, "mirror:images:dc1-dc2")
		if err != nil || res.Replayed != wantReplayed || res.Skipped != 1-wantReplayed || len(res.Failed) != 0 {
			t.Fatalf("replay %d = %+v, %v; want %d replayed", i+1, res, err, wantReplayed)
		}
	}
	if flipped.Load() == 0 {
		t.Fatal("no replay commit was turned into an abort: the test did not test")
	}
	all := w.consume("dc2", "images", 20, 10*time.Second)
	if len(all) != 20 || string(all[19].Key) != "7" || len(all[19].Value) != 5000 {
		t.Fatalf("after replay dc2 holds %d records, last key %q; want 20 with the large record last", len(all), all[len(all)-1].Key)
	}
	if h, _ := header(all[19], dlq.HeaderClass); h != "" {
		t.Fatalf("replayed record still carries %s", dlq.HeaderClass)
	}
	entries, err = dlq.List(ctx, opts, "mirror:images:dc1-dc2")
	if err != nil || len(entries) != 1 || !entries[0].Replayed {
		t.Fatalf("after replay dlq.List = %+v, %v; want the entry marked replayed", entries, err)
	}
}

// TestPartitionMismatch: a topic with another partition count in one DC
// stops that topic's jobs with a line naming DC, topic and both counts;
// the other topics keep mirroring.
func TestPartitionMismatch(t *testing.T) {
	w := newWorld(t, map[string]schema.Mirror{"good": {Partitions: 2, Tier: 1}, "bad": {Partitions: 4, Tier: 1}})
	w.createTopic("dc2", "bad", 2, nil)
	ex := w.run()
	w.waitTopic("dc1", "good")
	w.produce("dc1", "good", 100)
	if got := w.consume("dc2", "good", 100, 30*time.Second); len(got) != 100 {
		t.Fatalf("good: dc2 holds %d records, want 100", len(got))
	}
	want := "topic bad has 2 partitions in dc2 but the definition declares 4: ferry never changes a partition count; change the definition or recreate the topic"
	for _, id := range []string{"mirror:bad:dc1-dc2", "mirror:bad:dc2-dc1"} {
		deadline := time.Now().Add(10 * time.Second)
		var st metrics.Status
		for time.Now().Before(deadline) {
			if st = ex.Registry().Lookup(id).Status(); st.State == metrics.StateError {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if st.State != metrics.StateError || st.Error != want {
			t.Fatalf("%s: state %s, error %q; want error %q", id, st.State, st.Error, want)
		}
	}
}

// TestKcat checks a real librdkafka client against the embedded clusters:
// kcat produces to dc1 and, from dc2, consumes the mirrored record with its
// origin headers.
func TestKcat(t *testing.T) {
	kcat := devtest.Tool(t, "kcat")
	w := newWorld(t, map[string]schema.Mirror{"kcat.test": {Partitions: 1, Tier: 1}})
	w.run()
	w.waitTopic("dc1", "kcat.test")
	w.waitTopic("dc2", "kcat.test")
	produce := exec.Command(kcat, "-P", "-b", w.pair.DC1.Addr(), "-t", "kcat.test", "-k", "k1", "-H", "app=demo")
	produce.Stdin = strings.NewReader("hello from kcat\n")
	if out, err := produce.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}
	want := "k1=hello from kcat headers=app=demo,ferry.origin=dc1,ferry.origin.offset=0"
	deadline := time.Now().Add(20 * time.Second)
	var out []byte
	for time.Now().Before(deadline) {
		out, _ = exec.Command(kcat, "-C", "-b", w.pair.DC2.Addr(), "-t", "kcat.test", "-e", "-q",
			"-X", "isolation.level=read_committed", "-f", "%k=%s headers=%h\n").CombinedOutput()
		if strings.TrimSpace(string(out)) == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("kcat -C on dc2 printed %q, want %q", out, want)
}

func (w *world) createTopic(dc, topic string, partitions int32, configs map[string]string) {
	w.t.Helper()
	cfg := map[string]*string{}
	for k, v := range configs {
		cfg[k] = kadm.StringPtr(v)
	}
	resp, err := kadm.NewClient(w.client(dc)).CreateTopic(context.Background(), partitions, 1, cfg, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		w.t.Fatal(err)
	}
}

// TestEvictedPartitionLosesNothing fills a slot's transaction up in the
// middle of a fetched batch of a partition whose target refuses its writes,
// while the other partition of the slot's transaction is written: the slot
// takes the refused partition out (evicts it) and its job starts again.
// What is left of that batch must not be copied by the slot it left: it
// would be committed with a checkpoint past the records dropped with the
// failed transaction, which the job's next start would then skip. When the
// refused partition's records are alone in the failing transaction (the
// order of the first fetches decides it), the slot retries rather than
// evicts: the test then runs again on fresh clusters.
func TestEvictedPartitionLosesNothing(t *testing.T) {
	// About half the runs evict (kgo rotates the partitions' order from
	// fetch to fetch).
	const runs = 12
	for range runs {
		if evictMidBatch(t) {
			return
		}
	}
	t.Fatalf("in %d runs the slot never evicted the refused partition: the test did not test", runs)
}

// evictMidBatch runs TestEvictedPartitionLosesNothing once, and reports
// whether the slot evicted the refused partition.
func evictMidBatch(t *testing.T) (evicted bool) {
	const topic, refusedN, otherN = "evicted", 30000, 5000
	// Partitions 1 and 1+SlotCount share a slot (slotOf). The other's
	// backlog, fetched first, starts a transaction that the refused
	// partition's batch fills past maxTxnRecords in its middle; fetched
	// second, it finds the refused partition alone in a full transaction,
	// which the slot retries.
	p, q := int32(1), int32(1+systopics.SlotCount)
	w := newWorld(t, map[string]schema.Mirror{topic: {Partitions: 2 * systopics.SlotCount, Tier: 1}})
	w.createTopic("dc1", topic, 2*systopics.SlotCount, nil)
	w.createTopic("dc2", topic, 2*systopics.SlotCount, nil)
	src := w.client("dc1", kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(100*time.Millisecond))
	ctx := context.Background()
	for i := range refusedN + otherN {
		part, n := p, i
		if i >= refusedN {
			part, n = q, i-refusedN
		}
		src.Produce(ctx, &kgo.Record{Topic: topic, Partition: part, Key: []byte(fmt.Sprint(part, "-", n))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := src.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Writes to the refused partition are refused until the slot aborts
	// its first transaction.
	var refusing atomic.Bool
	refusing.Store(true)
	refused := w.pair.DC2.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Partitions: []int32{p}, Err: kerr.NotLeaderForPartition, Count: -1,
		When: func(kmsg.Request) bool { return refusing.Load() }})
	defer refused.Remove()
	aborts := w.pair.DC2.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Observe: true, Count: -1, When: func(req kmsg.Request) bool {
		if req.(*kmsg.EndTxnRequest).Commit {
			return false
		}
		refusing.Store(false)
		return true
	}})
	defer aborts.Remove()
	ex := w.run()

	recs := w.consume("dc2", topic, refusedN+otherN, 60*time.Second)
	count := map[int32]int{}
	keys := map[string]bool{}
	for _, r := range recs {
		count[r.Partition]++
		keys[string(r.Key)] = true
	}
	if count[p] != refusedN || count[q] != otherN || len(keys) != len(recs) {
		t.Fatalf("dc2 holds %d copies of partition %d's %d records and %d of partition %d's %d, %d distinct: want each once", count[p], p, refusedN, count[q], q, otherN, len(keys))
	}
	if refused.Hits() == 0 || aborts.Hits() == 0 {
		t.Fatalf("%d writes refused, %d transactions aborted: the test did not test", refused.Hits(), aborts.Hits())
	}
	// Evicted, not retried: the slot's other partition was written.
	return status(ex, topic).Counters[metrics.Retries] == 0
}

// TestFirstCopyCommitLost ends a slot producer's first transaction of
// copies with an abort while kgo is answered as if it committed, which kgo
// v1.22 itself was seen to do to a new producer's first transaction (a
// slot's first is its claims'; a producer opened for wide batches writes
// copies first). The slot reads that commit back and writes the copies
// again: every record arrives once.
func TestFirstCopyCommitLost(t *testing.T) {
	w := newWorld(t, map[string]schema.Mirror{"first": {Partitions: 1, Tier: 1}})
	w.createTopic("dc1", "first", 1, nil)
	w.createTopic("dc2", "first", 1, nil)
	var mu sync.Mutex
	commits := map[string]int{}
	var flipped atomic.Int32
	w.pair.DC2.Cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		w.pair.DC2.Cluster.KeepControl()
		end := req.(*kmsg.EndTxnRequest)
		if !end.Commit || !strings.HasPrefix(end.TransactionalID, "ferry.lane.default.dc1.dc2.") {
			return nil, nil, false
		}
		mu.Lock()
		commits[end.TransactionalID]++
		n := commits[end.TransactionalID]
		mu.Unlock()
		if n == 2 && flipped.Add(1) == 1 { // the claims', then the first copies'
			end.Commit = false // the broker aborts; kgo reads a success
		}
		return nil, nil, false
	})
	ex := w.run()
	waitAssignedJob(ex.Registry(), "mirror:first:dc1-dc2")
	w.produce("dc1", "first", 100)
	recs := w.consume("dc2", "first", 100, 30*time.Second)
	keys := map[string]bool{}
	for _, r := range recs {
		keys[string(r.Key)] = true
	}
	if len(recs) != 100 || len(keys) != 100 {
		t.Fatalf("dc2 holds %d copies of 100 records, %d distinct: want each once", len(recs), len(keys))
	}
	if flipped.Load() == 0 {
		t.Fatal("no commit of copies was turned into an abort: the test did not test")
	}
}
