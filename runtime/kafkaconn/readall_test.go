package kafkaconn_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
)

// TestReadToEndPastAbort reads a partition whose last records, when the
// read starts, are an open transaction's that is then aborted:
// read_committed never shows them, so the end is passed (at the abort
// marker) rather than met, and ReadToEnd must still return, with the
// committed records only.
func TestReadToEndPastAbort(t *testing.T) {
	k := devtest.Kafka(t, "dc1")
	if err := k.Cluster.CreateTopic("t", 1, nil); err != nil {
		t.Fatal(err)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(k.Addr()), kgo.DefaultProduceTopic("t")}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	plain, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.ProduceSync(ctx, &kgo.Record{Value: []byte("a")}, &kgo.Record{Value: []byte("b")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txn, err := kgo.NewClient(append(opts, kgo.TransactionalID("t-abort"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, &kgo.Record{Value: []byte("aborted 1")}, &kgo.Record{Value: []byte("aborted 2")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// ReadToEnd takes the end while the transaction is open, and waits
	// for it; the abort then writes its marker past that end.
	type result struct {
		got []string
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.err = kafkaconn.ReadToEnd(ctx, opts[:1], "t", nil, func(rec *kgo.Record) { r.got = append(r.got, string(rec.Value)) })
		done <- r
	}()
	time.Sleep(300 * time.Millisecond)
	if err := txn.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.got) != 2 || r.got[0] != "a" || r.got[1] != "b" {
		t.Fatalf("read %q, want [a b]", r.got)
	}
}

// TestReadersReuse reads two partitions again and again with the clients
// Readers keeps, records written between the reads, some reads at once:
// each read sees every record written before it, once, from the start,
// and the brokers see hardly a new connection after the first reads.
func TestReadersReuse(t *testing.T) {
	k := devtest.Kafka(t, "dc1")
	if err := k.Cluster.CreateTopic("t", 2, nil); err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	k.Cluster.ControlKey(int16(kmsg.ApiVersions), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster.KeepControl()
		conns.Add(1) // a client's first request on each connection
		return nil, nil, false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := kgo.NewClient(kgo.SeedBrokers(k.Addr()), kgo.DefaultProduceTopic("t"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rs := kafkaconn.NewReaders([]kgo.Opt{kgo.SeedBrokers(k.Addr())})
	defer rs.Close()
	written := 0
	var warm int32
	for round := range 6 {
		for p := range int32(2) {
			if err := w.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(fmt.Sprint(written))}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			written++
		}
		var wg sync.WaitGroup
		for range 3 { // reads at once each take a client of their own
			wg.Add(1)
			go func() {
				defer wg.Done()
				seen := map[string]int{}
				if err := rs.ReadToEnd(ctx, "t", nil, func(r *kgo.Record) { seen[string(r.Value)]++ }); err != nil {
					t.Error(err)
					return
				}
				for i := range written {
					if n := seen[fmt.Sprint(i)]; n != 1 {
						t.Errorf("round %d: record %d read %d times", round, i, n)
					}
				}
				if len(seen) != written {
					t.Errorf("round %d: read %d records, want %d", round, len(seen), written)
				}
			}()
		}
		wg.Wait()
		if round == 0 {
			warm = conns.Load()
		}
	}
	// A kept client may still open a connection it had not needed yet
	// (kgo opens them lazily, by kind of request); new clients would open
	// three each, nine a round.
	if more := conns.Load() - warm; more > 3 {
		t.Errorf("%d connections after the first round, %d more in the next five: the clients were not kept", warm, more)
	}
}
