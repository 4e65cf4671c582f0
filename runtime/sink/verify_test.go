package sink_test

import (
	"strings"
	"testing"
	"time"
)

// TestVerifyFindsChanges streams a table into PostgreSQL, then changes,
// removes and adds rows behind ferry's back there: `ferry verify` prints
// each differing key range and exits 2; repaired, it exits 0.
func TestVerifyFindsChanges(t *testing.T) {
	w := newWorld(t)
	w.ordersTable(5000)
	p := w.buildPlan(sinkTable{name: "trading.orders", snapshot: "initial", tier: 1})
	w.run(p)
	file := w.planFile(p)
	waitFor(t, 60*time.Second, "rows in PostgreSQL", func() (bool, string) {
		n := w.pgQuery("SELECT count(*)::text FROM public.orders")[0][0]
		return n == "5000", n
	})
	out, code := w.ferry("verify", "trading.orders", "--plan", file, "--chunk-size", "1000")
	if code != 0 || !strings.Contains(out, "trading.orders: equal\n") || !strings.Contains(out, "5000 rows in the source, 5000 in the target, 6 chunks") {
		t.Fatalf("verify of equal tables: exit %d\n%s", code, out)
	}
	w.pgQuery("UPDATE public.orders SET qty = -1 WHERE id = 1500 RETURNING id::text")
	w.pgQuery("DELETE FROM public.orders WHERE id IN (3001, 3002, 3010) RETURNING id::text")
	w.pgQuery("INSERT INTO public.orders (id, account, qty, note) VALUES (6001, 'ghost', 1, 'x') RETURNING id::text")
	out, code = w.ferry("verify", "trading.orders", "--plan", file, "--chunk-size", "1000")
	for _, want := range []string{
		"differ: id 1500..1500: 1 changed, 0 missing, 0 extra\n",
		"differ: id 3001..3010: 0 changed, 3 missing, 0 extra\n",
		"differ: id 6001..6001: 0 changed, 0 missing, 1 extra\n",
		"trading.orders: 3 of 6 chunks differ\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q", want)
		}
	}
	if code != 2 || t.Failed() {
		t.Fatalf("verify after changes behind ferry's back: exit %d, want 2\n%s", code, out)
	}
	// The source changing the rows again repairs them through the stream.
	w.mysql("UPDATE trading.orders SET note = 'again' WHERE id IN (1500, 3001, 3002, 3010)", "INSERT INTO trading.orders VALUES (6001, 'ghost', 1, 'x')")
	waitFor(t, 30*time.Second, "verify equal", func() (bool, string) {
		out, code = w.ferry("verify", "trading.orders", "--plan", file, "--chunk-size", "1000")
		return code == 0, out
	})
}
