package mirror_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/dlq"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/schema"
)

// sizeCase is a topic of TestSizeLimitAfterCompression: the records written
// to it (s small, c compressible and over the limit uncompressed, i
// incompressible and over it), and which of them must be mirrored and
// which dead-lettered at the topic's tier.
type sizeCase struct {
	topic    string
	tier     int
	same     bool // the source topic has the target's limit too
	records  string
	mirrored string // keys, in partition order
	dead     string
}

// TestSizeLimitAfterCompression: Kafka judges a batch by its size after
// compression, so a record over a topic's max.message.bytes that fits
// once compressed with the tier's codec is mirrored, never dead-lettered,
// whatever its size before compression; one that does not fit alone in a
// batch is dead-lettered, and replay agrees: it stays pending while the
// target still refuses it and is delivered once to its partition after the
// limit is raised. A record over the tier's batch size but under the
// topic's limit is mirrored too.
func TestSizeLimitAfterCompression(t *testing.T) {
	const limit = "3000"
	cases := []sizeCase{
		{topic: "t1", tier: 1, records: "s c s i s", mirrored: "0 1 2 4", dead: "3"},
		{topic: "t2", tier: 2, records: "s c s i s", mirrored: "0 1 2 4", dead: "3"},
		{topic: "t3", tier: 3, records: "s c s i s", mirrored: "0 1 2 4", dead: "3"},
		{topic: "t4", tier: 4, records: "s c s i s", mirrored: "0 1 2 4", dead: "3"},
		// Identical configs in both datacenters, a client that compresses.
		{topic: "t1.same", tier: 1, same: true, records: "s c s", mirrored: "0 1 2"},
		{topic: "t2.same", tier: 2, same: true, records: "s c s", mirrored: "0 1 2"},
		{topic: "t4.same", tier: 4, same: true, records: "s c s", mirrored: "0 1 2"},
		// 300,000 incompressible bytes: over Tier 1's 256 KiB batch size,
		// under the default max.message.bytes.
		{topic: "t1.big", tier: 1, records: "s B s", mirrored: "0 1 2"},
	}
	mirrors := map[string]schema.Mirror{}
	for _, c := range cases {
		mirrors[c.topic] = schema.Mirror{Partitions: 1, Tier: c.tier}
	}
	w := newWorld(t, mirrors)
	for _, c := range cases {
		target := map[string]string{"max.message.bytes": limit}
		if c.topic == "t1.big" {
			target = nil
		}
		source := map[string]string{"max.message.bytes": "1000000"}
		if c.same {
			source = target
		}
		w.createTopic("dc1", c.topic, 1, source)
		w.createTopic("dc2", c.topic, 1, target)
	}
	ex := w.run()

	src := w.client("dc1", kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.ProducerBatchMaxBytes(1<<20))
	values := map[string][]byte{}
	for _, c := range cases {
		for i, kind := range strings.Fields(c.records) {
			v := sizedValue(t, kind, i)
			key := fmt.Sprint(i)
			values[c.topic+"/"+key] = v
			if err := src.ProduceSync(context.Background(), &kgo.Record{Topic: c.topic, Key: []byte(key), Value: v}).FirstErr(); err != nil {
				t.Fatalf("%s: source refused record %d (%s): %v", c.topic, i, kind, err)
			}
		}
	}

	letters := map[string]int{}
	for _, c := range cases {
		mirrored := strings.Fields(c.mirrored)
		got := w.consume("dc2", c.topic, len(mirrored), 60*time.Second)
		if keys := keysOf(got); !slices.Equal(keys, mirrored) {
			t.Errorf("%s (Tier %d): dc2 holds keys %v, want %v", c.topic, c.tier, keys, mirrored)
		}
		for _, r := range got {
			if !bytes.Equal(r.Value, values[c.topic+"/"+string(r.Key)]) {
				t.Errorf("%s: record %s arrived changed (%d bytes)", c.topic, r.Key, len(r.Value))
			}
		}
		letters["mirror:"+c.topic+":dc1-dc2"] = len(strings.Fields(c.dead))
	}
	for id, n := range letters {
		if got := ex.Registry().Lookup(id).Status().Counters[metrics.DeadLetters]; got != int64(n) {
			t.Errorf("%s: %d dead letters, want %d", id, got, n)
		}
	}

	// Replay with the target unchanged: every letter still fails.
	ctx := context.Background()
	replay := func(c sizeCase) dlq.ReplayResult {
		t.Helper()
		opts, err := kafkaconn.Options(w.plan.Datacenters["dc2"])
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, kafkaconn.Compress(w.plan.Job("mirror:"+c.topic+":dc1-dc2").Client.Compression))
		res, err := dlq.Replay(ctx, opts, "mirror:"+c.topic+":dc1-dc2")
		if err != nil {
			t.Fatalf("%s: replay: %v", c.topic, err)
		}
		return res
	}
	for _, c := range cases {
		n := len(strings.Fields(c.dead))
		if res := replay(c); res.Replayed != 0 || len(res.Failed) != n {
			t.Errorf("%s: replay against the unchanged target = %+v, want %d still failing", c.topic, res, n)
		}
	}
	adm := kadm.NewClient(w.client("dc2"))
	for _, c := range cases {
		if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr("1000000")}}, c.topic); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		n := len(strings.Fields(c.dead))
		if res := replay(c); res.Replayed != n || len(res.Failed) != 0 {
			t.Errorf("%s: replay after the limit was raised = %+v, want %d replayed", c.topic, res, n)
		}
		if res := replay(c); res.Replayed != 0 || res.Skipped != n {
			t.Errorf("%s: second replay = %+v, want %d skipped", c.topic, res, n)
		}
		want := append(strings.Fields(c.mirrored), strings.Fields(c.dead)...)
		if keys := keysOf(w.consume("dc2", c.topic, len(want), 30*time.Second)); !slices.Equal(keys, want) {
			t.Errorf("%s: after replay dc2 holds keys %v, want %v", c.topic, keys, want)
		}
	}
}

// TestDeadLetterOverDLQLimit: a dead letter that ferry.dlq itself refuses
// is never dropped: the job shows an error that says so and the record
// stays unread; once ferry.dlq takes it, the job dead-letters it and goes on.
func TestDeadLetterOverDLQLimit(t *testing.T) {
	w := newWorld(t, map[string]schema.Mirror{"scans": {Partitions: 1, Tier: 1}})
	w.createTopic("dc1", "scans", 1, nil)
	w.createTopic("dc2", "scans", 1, map[string]string{"max.message.bytes": "3000"})
	ex := w.run()
	w.waitTopic("dc2", "ferry.dlq")
	adm := kadm.NewClient(w.client("dc2"))
	ctx := context.Background()
	setDLQLimit := func(v string) {
		t.Helper()
		if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "max.message.bytes", Value: kadm.StringPtr(v)}}, "ferry.dlq"); err != nil {
			t.Fatal(err)
		}
	}
	setDLQLimit("4000")
	src := w.client("dc1", kgo.DefaultProduceTopic("scans"))
	for i, kind := range []string{"s", "i", "s"} {
		if err := src.ProduceSync(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: sizedValue(t, kind, i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // committed before the refused one is read
			w.consume("dc2", "scans", 1, 30*time.Second)
		}
	}
	const id = "mirror:scans:dc1-dc2"
	var st metrics.Status
	deadline := time.Now().Add(60 * time.Second)
	for st = ex.Registry().Lookup(id).Status(); !strings.Contains(st.Error, "ferry.dlq"); st = ex.Registry().Lookup(id).Status() {
		if time.Now().After(deadline) {
			t.Fatalf("the job never reported the refused dead letter: state %s, error %q", st.State, st.Error)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if want := "partition 0 of scans cannot be written to dc2: its dead letter of offset 1 cannot be written to ferry.dlq either"; !strings.HasPrefix(st.Error, want) {
		t.Errorf("job error %q, want it to start with %q", st.Error, want)
	}
	if keys := keysOf(w.consume("dc2", "scans", 1, 30*time.Second)); !slices.Equal(keys, []string{"0"}) {
		t.Fatalf("while the dead letter is refused dc2 holds %v, want only the record before it", keys)
	}

	setDLQLimit("1000000")
	if keys := keysOf(w.consume("dc2", "scans", 2, 60*time.Second)); !slices.Equal(keys, []string{"0", "2"}) {
		t.Fatalf("dc2 holds %v, want 0 and 2", keys)
	}
	letters := 0
	for _, r := range w.consume("dc2", "ferry.dlq", 1, 10*time.Second) {
		if j, _ := header(r, dlq.HeaderJob); j == id {
			letters++
		}
	}
	if letters != 1 {
		t.Fatalf("ferry.dlq holds %d dead letters of %s, want 1", letters, id)
	}
	if st := ex.Registry().Lookup(id).Status(); st.State != metrics.StateRunning {
		t.Fatalf("the job is %s (%s) after ferry.dlq took its dead letter", st.State, st.Error)
	}
}

// sizedValue is a record value: s small, c 10,000 compressible bytes, i
// 5,000 random ones, B 300,000 random ones.
func sizedValue(t *testing.T, kind string, i int) []byte {
	t.Helper()
	random := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	switch kind {
	case "c":
		return bytes.Repeat([]byte("x"), 10000)
	case "i":
		return random(5000)
	case "B":
		return random(300000)
	}
	return []byte(fmt.Sprintf("small %d", i))
}

func keysOf(recs []*kgo.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Key))
	}
	return out
}
