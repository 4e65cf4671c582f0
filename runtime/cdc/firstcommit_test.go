package cdc

import (
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFirstCommitLost ends the first transaction of the job's new producer
// with an abort while kgo is answered as if it committed, which kgo v1.22
// itself was seen to do to a new producer's first transaction. The job
// reads that commit back and starts again at once from its last
// checkpoint, without failing: no event is lost, none doubled.
func TestFirstCommitLost(t *testing.T) {
	w := newWorld(t)
	if err := w.db.Exec("CREATE TABLE trading.orders (id INT PRIMARY KEY, qty INT)"); err != nil {
		t.Fatal(err)
	}
	pj := w.job(table("trading.orders", "no_data", 1))
	r := w.start(pj)
	if err := w.db.Exec("INSERT INTO trading.orders VALUES (1, 1)"); err != nil {
		t.Fatal(err)
	}
	w.waitFor("trading.trading.orders", "1 record", func(rs []rec) bool { return len(rs) >= 1 })
	r.stop(t)

	// Written while the job is stopped: its next producer's first
	// transaction carries them.
	var inserts []string
	for id := 2; id <= 11; id++ {
		inserts = append(inserts, fmt.Sprintf("INSERT INTO trading.orders VALUES (%d, %d)", id, id))
	}
	if err := w.db.Exec(inserts...); err != nil {
		t.Fatal(err)
	}
	var flipped atomic.Int32
	w.kafka.Cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if end := req.(*kmsg.EndTxnRequest); end.Commit && flipped.Add(1) == 1 {
			end.Commit = false // the broker aborts; kgo reads a success
		}
		return nil, nil, false
	})
	r = w.start(pj)
	w.waitFor("trading.trading.orders", "11 records", func(rs []rec) bool { return len(rs) >= 11 })
	r.stop(t)

	if flipped.Load() == 0 {
		t.Fatal("no commit was turned into an abort: the test did not test")
	}
	var keys []string
	for _, x := range w.read("trading.trading.orders") {
		keys = append(keys, x.key)
	}
	sort.Strings(keys)
	var want []string
	for id := 1; id <= 11; id++ {
		want = append(want, fmt.Sprintf(`{"id":%d}`, id))
	}
	sort.Strings(want)
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Fatalf("events by key:\n%s\nwant each of 1..11 once:\n%s", strings.Join(keys, " "), strings.Join(want, " "))
	}
}
