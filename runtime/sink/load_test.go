package sink_test

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLoadWhileStreaming is the no_data hand-over: the table's stream
// starts empty in the target, and `ferry load` copies the existing rows
// while a writer updates, deletes and re-inserts them and the sink applies
// the stream. Loaded rows older than streamed changes must lose, deleted
// keys must stay deleted: `ferry verify` then finds the tables equal.
func TestLoadWhileStreaming(t *testing.T) {
	w := newWorld(t)
	const rows = 30_000
	w.ordersTable(rows)
	p := w.buildPlan(sinkTable{name: "trading.orders", snapshot: "no_data", tier: 1})
	w.run(p)
	file := w.planFile(p)
	wr := w.startWriter(rows, 400)
	time.Sleep(300 * time.Millisecond)
	out, code := w.ferry("load", "trading.orders", "--plan", file, "--chunk-size", "2000", "--parallel", "4")
	if code != 0 || !regexp.MustCompile(`loaded 2\d{4} rows of trading.orders into public.orders`).MatchString(out) {
		wr.finish()
		t.Fatalf("ferry load: exit %d\n%s", code, out)
	}
	time.Sleep(500 * time.Millisecond)
	n := wr.finish()
	t.Logf("%s; %d writes meanwhile", strings.TrimSpace(out), n)
	if !strings.Contains(out, "kept a newer streamed version") {
		t.Fatalf("no summary of rows the stream had already changed:\n%s", out)
	}
	out, code = w.ferry("verify", "trading.orders", "--plan", file, "--chunk-size", "5000")
	if code != 0 {
		t.Fatalf("verify after load under writes: exit %d\n%s", code, out)
	}
	t.Log(strings.TrimSpace(out))
}
