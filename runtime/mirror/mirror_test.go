package mirror_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/checkpoint"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/headers"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/mirror"
	"github.com/ferry-pipelines/ferry/schema"
)

// world is two embedded clusters and a plan mirroring topics between them.
type world struct {
	t    testing.TB
	pair *devenv.Pair
	plan *plan.Plan
}

// newWorld starts two clusters and compiles a plan mirroring topics between
// them; edits change the definitions first (to add shards, say).
func newWorld(t testing.TB, mirrors map[string]schema.Mirror, edits ...func(*schema.Definitions)) *world {
	t.Helper()
	pair := devtest.Pair(t)
	defs := &schema.Definitions{
		Datacenters: map[string]schema.Datacenter{
			"dc1": {Kafka: schema.Kafka{Brokers: []string{pair.DC1.Addr()}}},
			"dc2": {Kafka: schema.Kafka{Brokers: []string{pair.DC2.Addr()}}},
		},
		Mirrors: mirrors,
	}
	for _, edit := range edits {
		edit(defs)
	}
	p, err := compiler.CompileDefinitions(defs)
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, pair: pair, plan: p}
}

// run starts an executor on the world's plan until the test ends.
func (w *world) run() *executor.Executor {
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ex := executor.New(executor.WithKind(plan.KindMirror, mirror.NewKind()), executor.WithLogger(logger))
	ex.Apply(ctx, w.plan)
	w.t.Cleanup(func() { cancel(); ex.Stop() })
	return ex
}

func (w *world) client(dc string, opts ...kgo.Opt) *kgo.Client {
	w.t.Helper()
	addr := w.pair.DC1.Addr()
	if dc == "dc2" {
		addr = w.pair.DC2.Addr()
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(cl.Close)
	return cl
}

// checkpoints reads the checkpoint history of job in dc2, the keys keep
// picks, as the slots' claims read it.
func (w *world) checkpoints(job string, keep func(key string) bool) map[string][]checkpoint.Entry {
	w.t.Helper()
	opts, err := kafkaconn.Options(w.plan.Datacenters["dc2"])
	if err != nil {
		w.t.Fatal(err)
	}
	readers := kafkaconn.NewReaders(opts)
	defer readers.Close()
	hist, err := checkpoint.History(context.Background(), readers, []string{job}, keep)
	if err != nil {
		w.t.Fatal(err)
	}
	return hist
}

// produce writes n records to topic in dc with keys "<dc>-<i>", spread over
// partitions by key, every third one with a client header.
func (w *world) produce(dc, topic string, n int) {
	w.t.Helper()
	cl := w.client(dc, kgo.DefaultProduceTopic(topic))
	ctx := context.Background()
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		r := &kgo.Record{Key: []byte(fmt.Sprintf("%s-%d", dc, i)), Value: []byte(fmt.Sprintf("value %d from %s", i, dc))}
		if i%3 == 0 {
			r.Headers = []kgo.RecordHeader{{Key: "trace", Value: []byte(strconv.Itoa(i))}}
		}
		recs = append(recs, r)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		w.t.Fatal(err)
	}
}

// consume reads n committed records of topic in dc, failing after timeout.
func (w *world) consume(dc, topic string, n int, timeout time.Duration) []*kgo.Record {
	w.t.Helper()
	cl := w.client(dc, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			w.t.Fatalf("%s %s: got %d of %d records before %v", dc, topic, len(out), n, timeout)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	// Nothing more may arrive: a duplicate would show up here.
	extra, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	cl.PollFetches(extra).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	return out
}

func header(r *kgo.Record, key string) (string, int) {
	var v string
	n := 0
	for _, h := range r.Headers {
		if h.Key == key {
			v = string(h.Value)
			n++
		}
	}
	return v, n
}

// TestClientTransactionsCopied writes records in transactions in dc2, as a
// client's transactional producer would, beside the copies ferry writes
// there in its own: the fetcher skips the batches of ferry's producers
// undecoded, and must not skip a client's. Every committed record is
// copied to dc1, an aborted one is not.
func TestClientTransactionsCopied(t *testing.T) {
	w := newWorld(t, map[string]schema.Mirror{"payments": {Partitions: 2, Tier: 1}})
	w.run()
	w.waitTopic("dc1", "payments")
	w.waitTopic("dc2", "payments")
	w.produce("dc1", "payments", 500) // copies into dc2 first: ferry's producers are known
	cl := w.client("dc2", kgo.DefaultProduceTopic("payments"), kgo.TransactionalID("client-txn"))
	ctx := context.Background()
	for i, commit := range []bool{true, false, true} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for j := range 100 {
			cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprintf("txn%d-%d", i, j))}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	for _, r := range w.consume("dc1", "payments", 700, 30*time.Second) {
		got[string(r.Key)[:4]]++
	}
	if want := map[string]int{"dc1-": 500, "txn0": 100, "txn2": 100}; !maps.Equal(got, want) {
		t.Fatalf("dc1 holds %v (by key prefix), want %v", got, want)
	}
}

// TestMirrorBothWays produces 10,000 records into each DC and checks that
// each DC then holds exactly the 20,000, in the right partitions, in produce
// order per partition, with their values and headers, and none with a
// doubled origin. Records the mirror recycles are written over: one used
// after its recycling would show as a wrong key or value.
func TestMirrorBothWays(t *testing.T) {
	defer mirror.ScribbleRecycled()()
	w := newWorld(t, map[string]schema.Mirror{"orders.events": {Partitions: 6, Tier: 1}})
	w.run()
	// The job creates the topic; wait for it before producing.
	w.waitTopic("dc1", "orders.events")
	w.waitTopic("dc2", "orders.events")
	w.produce("dc1", "orders.events", 10000)
	w.produce("dc2", "orders.events", 10000)
	for _, dc := range []string{"dc1", "dc2"} {
		recs := w.consume(dc, "orders.events", 20000, 60*time.Second)
		if len(recs) != 20000 {
			t.Fatalf("%s holds %d records, want 20000", dc, len(recs))
		}
		keys := map[string]int32{}
		lastIndex := map[string]int{} // origin dc + partition -> last index seen
		for _, r := range recs {
			key := string(r.Key)
			if _, dup := keys[key]; dup {
				t.Fatalf("%s: key %s twice", dc, key)
			}
			keys[key] = r.Partition
			origin, n := header(r, headers.Origin)
			_, no := header(r, headers.OriginOffset)
			from := key[:3]
			switch {
			case from == dc && n != 0:
				t.Fatalf("%s: local record %s carries ferry.origin %q", dc, key, origin)
			case from != dc && (n != 1 || no != 1 || origin != from):
				t.Fatalf("%s: mirrored record %s has ferry.origin %q x%d, ferry.origin.offset x%d", dc, key, origin, n, no)
			}
			i, _ := strconv.Atoi(key[4:])
			if want := fmt.Sprintf("value %d from %s", i, from); string(r.Value) != want {
				t.Fatalf("%s: record %s has value %q, want %q", dc, key, r.Value, want)
			}
			if trace, _ := header(r, "trace"); (i%3 == 0) != (trace == strconv.Itoa(i)) {
				t.Fatalf("%s: record %s lost or gained its client header (%q)", dc, key, trace)
			}
			ord := fmt.Sprintf("%s/%d", from, r.Partition)
			if last, ok := lastIndex[ord]; ok && i < last {
				t.Fatalf("%s: record %s out of order in partition %d (after %d)", dc, key, r.Partition, last)
			}
			lastIndex[ord] = i
		}
	}
	// The same key sits in the same partition in both DCs.
	one := partitions(w.consume("dc1", "orders.events", 20000, 30*time.Second))
	two := partitions(w.consume("dc2", "orders.events", 20000, 30*time.Second))
	for k, p := range one {
		if two[k] != p {
			t.Fatalf("key %s in partition %d of dc1 but %d of dc2", k, p, two[k])
		}
	}
}

func partitions(recs []*kgo.Record) map[string]int32 {
	m := map[string]int32{}
	for _, r := range recs {
		m[string(r.Key)] = r.Partition
	}
	return m
}

func (w *world) waitTopic(dc, topic string) {
	w.t.Helper()
	cl := w.client(dc)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		topics, err := kadm.NewClient(cl).ListTopics(context.Background(), topic)
		if err == nil && topics.Has(topic) && topics[topic].Err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.t.Fatalf("topic %s never appeared in %s", topic, dc)
}
