package mirror_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/dlq"
	"github.com/ferry-pipelines/ferry/runtime/headers"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestMalformedOriginIsDeadLettered writes records carrying every malformed
// form of the origin headers into dc1, between client records and one
// record that looks mirrored from dc2. Through the running job, each
// malformed one lands in dc2's ferry.dlq with class MALFORMED_ORIGIN_HEADER
// and its own headers, the client records are copied, the mirrored-looking
// one is skipped, and the counts add up: nothing is dropped silently.
func TestMalformedOriginIsDeadLettered(t *testing.T) {
	malformed := map[string][]string{ // key -> headers as name=value
		"unknown-dc":        {"ferry.origin=dc9", "ferry.origin.offset=5"},
		"own-dc":            {"ferry.origin=dc1", "ferry.origin.offset=5"},
		"no-offset":         {"ferry.origin=dc2"},
		"offset-only":       {"ferry.origin.offset=5"},
		"negative":          {"ferry.origin=dc2", "ferry.origin.offset=-1"},
		"plus-sign":         {"ferry.origin=dc2", "ferry.origin.offset=+5"},
		"leading-zero":      {"ferry.origin=dc2", "ferry.origin.offset=05"},
		"not-a-number":      {"ferry.origin=dc2", "ferry.origin.offset=five"},
		"overflow":          {"ferry.origin=dc2", "ferry.origin.offset=9223372036854775808"},
		"empty-offset":      {"ferry.origin=dc2", "ferry.origin.offset="},
		"empty-origin":      {"ferry.origin=", "ferry.origin.offset=5"},
		"origin-twice":      {"ferry.origin=dc2", "ferry.origin=dc2", "ferry.origin.offset=5"},
		"offset-twice":      {"ferry.origin=dc2", "ferry.origin.offset=5", "ferry.origin.offset=6"},
		"client-and-forged": {"app=demo", "ferry.origin=dc2", "ferry.origin.offset=x"},
	}
	w := newWorld(t, map[string]schema.Mirror{"ledger": {Partitions: 1, Tier: 1}})
	w.createTopic("dc1", "ledger", 1, nil)
	w.createTopic("dc2", "ledger", 1, nil)
	ex := w.run()

	var recs []*kgo.Record
	add := func(key string, headers []string) {
		r := &kgo.Record{Key: []byte(key), Value: []byte("value of " + key)}
		for _, h := range headers {
			k, v, _ := strings.Cut(h, "=")
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		recs = append(recs, r)
	}
	add("client-0", nil)
	for key, headers := range malformed {
		add(key, headers)
	}
	add("client-1", []string{"app=demo"})
	add("mirrored", []string{"ferry.origin=dc2", "ferry.origin.offset=7"})
	add("client-2", nil)
	if err := w.client("dc1", kgo.DefaultProduceTopic("ledger")).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	copied := w.consume("dc2", "ledger", 3, 60*time.Second)
	var keys []string
	for _, r := range copied {
		keys = append(keys, string(r.Key))
	}
	if got := strings.Join(keys, " "); got != "client-0 client-1 client-2" {
		t.Fatalf("dc2 ledger holds %q, want the three client records", got)
	}
	letters := w.consume("dc2", "ferry.dlq", len(malformed), 30*time.Second)
	if len(letters) != len(malformed) {
		t.Fatalf("ferry.dlq holds %d records, want %d", len(letters), len(malformed))
	}
	for _, l := range letters {
		key := string(l.Key)
		want, ok := malformed[key]
		if !ok {
			t.Fatalf("dead letter for %q, which is not malformed", key)
		}
		delete(malformed, key)
		if class, _ := header(l, dlq.HeaderClass); class != "MALFORMED_ORIGIN_HEADER" {
			t.Errorf("%s: class %q, want MALFORMED_ORIGIN_HEADER", key, class)
		}
		if job, _ := header(l, dlq.HeaderJob); job != "mirror:ledger:dc1-dc2" {
			t.Errorf("%s: job %q", key, job)
		}
		if msg, _ := header(l, dlq.HeaderMessage); !strings.Contains(msg, "ferry.origin") {
			t.Errorf("%s: message %q does not say what is wrong", key, msg)
		}
		if off, _ := header(l, dlq.HeaderOffset); off != strconv.Itoa(indexOf(recs, key)) {
			t.Errorf("%s: ferry.error.offset %s, want its source offset %d", key, off, indexOf(recs, key))
		}
		for i, h := range want { // the record's own headers, as they were, first
			if got := l.Headers[i].Key + "=" + string(l.Headers[i].Value); got != h {
				t.Errorf("%s: header %d is %s, want %s", key, i, got, h)
			}
		}
	}
	// The counters move once the commit returns, just after readers see it.
	var st metrics.Status
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if st = ex.Registry().Lookup("mirror:ledger:dc1-dc2").Status(); st.Counters[metrics.Records] == 3 {
			break
		}
	}
	if st.Counters[metrics.Records] != 3 || st.Counters[metrics.DeadLetters] != 14 || st.Counters[metrics.Filtered] != 1 {
		t.Fatalf("counters %v, want 3 records, 14 dead letters, 1 filtered (of 18 written)", st.Counters)
	}
	if _, n := header(copied[1], headers.Origin); n != 1 {
		t.Fatalf("a copy carries ferry.origin %d times", n)
	}
}

func indexOf(recs []*kgo.Record, key string) int {
	for i, r := range recs {
		if string(r.Key) == key {
			return i
		}
	}
	return -1
}
