package kafkaconn_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
