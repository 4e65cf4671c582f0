package sink_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// TestSinkKeys: a table without a primary key but with a unique index of
// NOT NULL columns is applied by that index, as its events are keyed
// (Debezium's rule), and the target's primary key is its columns; a table
// with neither is refused with a line saying what to do, and only its sink
// waits.
func TestSinkKeys(t *testing.T) {
	w := newWorld(t)
	w.mysql("CREATE TABLE trading.coded (n INT, code VARCHAR(10) NOT NULL, UNIQUE KEY by_code (code))",
		"INSERT INTO trading.coded VALUES (1, 'x'), (2, 'y')",
		"CREATE TABLE trading.nokey (note VARCHAR(10))")
	p := w.buildPlan(sinkTable{name: "trading.coded", snapshot: "initial", tier: 1}, sinkTable{name: "trading.nokey", snapshot: "no_data", tier: 1})
	w.start(p, "")
	w.waitRunning(p.Jobs[0], p.Jobs[1]) // the source and coded's sink
	w.mysql("UPDATE trading.coded SET n = 20 WHERE code = 'y'", "DELETE FROM trading.coded WHERE code = 'x'", "INSERT INTO trading.coded VALUES (3, 'z')")
	waitFor(t, 30*time.Second, "coded equals its source", func() (bool, string) {
		got := fmt.Sprint(w.pgQuery("SELECT code, n::text FROM public.coded ORDER BY code"))
		return got == "[[y 20] [z 3]]", got
	})
	pk := w.pgQuery(`SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = 'public.coded'::regclass AND i.indisprimary`)
	if got := fmt.Sprint(pk); got != "[[code]]" {
		t.Fatalf("public.coded's primary key is %s, want [[code]]", got)
	}
	id := plan.SinkJobID("trading-db", "trading.nokey")
	want := "table trading.nokey has no primary key nor unique index of NOT NULL columns: a sink applies changes by key"
	waitFor(t, 30*time.Second, id+" refused with its line", func() (bool, string) {
		st := w.ex.Registry().Lookup(id).Status()
		return strings.Contains(st.Error, want), st.State + ": " + st.Error
	})
}
