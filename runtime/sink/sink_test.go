package sink_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// TestEndToEnd streams inserts, updates, a primary key update and deletes
// from MariaDB through the CDC job and the sink into PostgreSQL, and
// checks the target rows, the versions kept for deleted keys, the offsets
// table and the figures.
func TestEndToEnd(t *testing.T) {
	w := newWorld(t)
	w.mysql("CREATE TABLE trading.orders (id INT PRIMARY KEY, account VARCHAR(20) NOT NULL, qty INT, note TEXT)",
		"INSERT INTO trading.orders VALUES (1, 'a', 10, 'before start'), (2, 'b', 20, NULL)")
	p := w.buildPlan(sinkTable{name: "trading.orders", snapshot: "initial", tier: 1, target: "sales.orders", columns: map[string]string{"qty": "quantity"}})
	w.run(p)
	// The load's rows first: a row changed while its chunk is read would
	// come only as its change (DBLog drops its read), and the counters
	// below count both reads.
	waitFor(t, 30*time.Second, "the loaded rows in the target", func() (bool, string) {
		n := w.pgCount("sales.orders")
		return n == 2, fmt.Sprint(n)
	})
	w.mysql(
		"INSERT INTO trading.orders VALUES (3, 'c', 30, 'x'), (4, 'd', 40, 'y'), (5, 'e', 50, 'z')",
		"UPDATE trading.orders SET qty = 11, note = 'updated' WHERE id = 1",
		"UPDATE trading.orders SET id = 20 WHERE id = 2", // a primary key update
		"DELETE FROM trading.orders WHERE id = 4",
		"BEGIN", "UPDATE trading.orders SET qty = qty + 1 WHERE id = 3", "UPDATE trading.orders SET qty = qty + 1 WHERE id = 3", "COMMIT",
		"DELETE FROM trading.orders WHERE id = 5", "INSERT INTO trading.orders VALUES (5, 'e2', 55, 'again')",
	)
	want := "[[1 a 11 updated] [3 c 32 x] [5 e2 55 again] [20 b 20 NULL]]"
	waitFor(t, 30*time.Second, "target equals the source", func() (bool, string) {
		got := fmt.Sprint(w.pgQuery("SELECT id::text, account, quantity::text, note FROM sales.orders o ORDER BY o.id"))
		return got == want, got
	})
	// Deleted keys keep their version, newer than the rows they deleted.
	vs := w.pgQuery("SELECT id::text, _ferry_deleted::text FROM sales.orders_ferry_versions v ORDER BY v.id")
	if got := fmt.Sprint(vs); got != "[[1 false] [2 true] [3 false] [4 true] [5 false] [20 false]]" {
		t.Fatalf("versions = %s", got)
	}
	older := w.pgQuery(`SELECT count(*)::text FROM sales.orders o JOIN sales.orders_ferry_versions v USING (id) WHERE o._ferry_version <> v._ferry_version`)
	if older[0][0] != "0" {
		t.Fatalf("%s rows whose version differs from the versions table", older[0][0])
	}
	off := w.pgQuery("SELECT job, topic, partition::text, (next_offset > 0)::text FROM sales.ferry_offsets")
	if got := fmt.Sprint(off); got != "[[sink:trading-db:trading.orders trading.trading.orders 0 true]]" {
		t.Fatalf("offsets = %s", got)
	}
	st := w.ex.Registry().Lookup(p.Jobs[1].ID).Status()
	c := st.Parts["trading.orders"].Counters
	if c[metrics.SnapshotRead] != 2 || c[metrics.Creates] != 5 || c[metrics.Deletes] != 3 || c[metrics.Updates] != 3 {
		t.Fatalf("counters = %v", c)
	}
	t.Logf("latency %+v, within budget %.3f", st.Latency, st.WithinBudget)
}
