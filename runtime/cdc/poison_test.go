package cdc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/dlq"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// TestEventsOverTopicLimit: a change event over its topic's
// max.message.bytes before compression that fits once compressed (lz4)
// is written, loaded or streamed; one that does not is dead-lettered (each
// of its events), and the table goes on. A 300,000-byte event over the tier's batch size but
// under the topic's limit is written too.
func TestEventsOverTopicLimit(t *testing.T) {
	w := newWorld(t)
	if err := w.db.Exec("CREATE TABLE trading.docs (id INT PRIMARY KEY, body LONGTEXT)",
		"INSERT INTO trading.docs VALUES (0, REPEAT('x', 10000))"); err != nil {
		t.Fatal(err)
	}
	const topic = "trading.trading.docs"
	opts, _ := kafkaconn.Options(w.plan.Datacenters["dc1"])
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("3000")}, topic); err != nil {
		t.Fatal(err)
	}
	big := table("trading.big", "no_data", 1)
	if err := w.db.Exec("CREATE TABLE trading.big (id INT PRIMARY KEY, body LONGTEXT)"); err != nil {
		t.Fatal(err)
	}
	pj := w.job(table("trading.docs", "initial", 2), big)
	pj.Client.Compression, pj.Client.BatchMaxBytes = "lz4", 256<<10
	r := w.startRetrying(pj)
	defer r.stop(t)

	random := func(n int) string {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)[:n]
	}
	for _, s := range []string{
		"INSERT INTO trading.docs VALUES (1, 'small')",
		"INSERT INTO trading.docs VALUES (2, REPEAT('y', 10000))",
		fmt.Sprintf("INSERT INTO trading.docs VALUES (3, '%s')", random(8000)),
		"INSERT INTO trading.docs VALUES (4, 'small')",
		fmt.Sprintf("INSERT INTO trading.big VALUES (1, '%s')", random(300000)),
	} {
		if err := w.db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	// Rows 0, 1, 2 and 4, loaded (r), streamed (c) or both, as the load's
	// windows fall; row 3 never.
	keys := func(rs []rec) map[string]bool {
		m := map[string]bool{}
		for _, rc := range rs {
			m[rc.key] = true
		}
		return m
	}
	rs := w.waitFor(topic, "ids 0, 1, 2 and 4", func(rs []rec) bool { return len(keys(rs)) >= 4 })
	if got := keys(rs); len(got) != 4 || got[`{"id":3}`] {
		t.Errorf("%s holds keys %v, want ids 0, 1, 2 and 4", topic, got)
	}
	for _, rc := range rs {
		if (rc.key == `{"id":0}` || rc.key == `{"id":2}`) && len(rc.value) < 10000 {
			t.Errorf("%s: record %s arrived without its body (%d bytes)", topic, rc.key, len(rc.value))
		}
	}
	if rs := w.waitFor("trading.trading.big", "the 300,000-byte event", func(rs []rec) bool { return len(rs) >= 1 }); len(rs) != 1 || len(rs[0].value) < 300000 {
		t.Errorf("trading.big: %d records", len(rs))
	}
	var letters []*kgo.Record
	err = kafkaconn.ReadToEnd(ctx, opts, systopics.DLQ, nil, func(r *kgo.Record) { letters = append(letters, r) })
	if err != nil || len(letters) == 0 {
		t.Fatalf("ferry.dlq holds %d records (%v), want the events of id 3", len(letters), err)
	}
	for _, l := range letters { // its streamed event, and its loaded one if the load read it
		if k, h := string(l.Key), headerOf(l, dlq.HeaderClass); k != `{"id":3}` || h != "MESSAGE_TOO_LARGE" || headerOf(l, dlq.HeaderTopic) != topic {
			t.Errorf("dead letter key %s, class %q, topic %q", k, h, headerOf(l, dlq.HeaderTopic))
		}
	}
	if n := r.m.Status().Parts["trading.docs"].Counters[metrics.DeadLetters]; n != int64(len(letters)) {
		t.Errorf("trading.docs counts %d dead letters, ferry.dlq holds %d", n, len(letters))
	}
}

func headerOf(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// startRetrying runs the job as the executor does: started again after
// it fails, until the test stops it.
func (w *world) startRetrying(pj plan.Job) *running {
	w.t.Helper()
	r, ctx := w.launch(pj)
	go func() {
		for {
			err := r.job.Run(ctx)
			if err == nil || ctx.Err() != nil {
				r.done <- nil
				return
			}
			w.t.Logf("job failed (started again): %v", err)
			time.Sleep(200 * time.Millisecond)
		}
	}()
	w.waitRunning(r)
	return r
}
