package cdc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// TestKeylessTables: tables without a primary key are captured as Debezium
// captures them, and a table that cannot be loaded is that table's error,
// never the source's.
//   - trading.events has no key and snapshot no_data: its changes stream
//     with a null key.
//   - trading.lines has no primary key but declares key: ["code"]: it is
//     loaded and streamed keyed by code.
//   - trading.coded has no primary key but a unique index of NOT NULL
//     columns (and one of nullable ones): as Debezium does, that index is
//     its key, for the load and the events.
//   - trading.nopk has no key and snapshot initial: its load fails with a
//     line on the table in the job's status; its changes still stream.
//   - trading.gone does not exist: its load fails on the table too.
//   - trading.orders, an ordinary table, is loaded and streamed meanwhile.
func TestKeylessTables(t *testing.T) {
	w := newWorld(t)
	for _, s := range []string{
		"CREATE TABLE trading.events (kind VARCHAR(10), n INT)",
		"CREATE TABLE trading.lines (code VARCHAR(10) NOT NULL, qty INT)",
		"INSERT INTO trading.lines VALUES ('a', 1), ('b', 2), ('c', 3)",
		"CREATE TABLE trading.coded (n INT, note VARCHAR(10), code VARCHAR(10) NOT NULL, UNIQUE KEY by_note (note), UNIQUE KEY by_code (code))",
		"INSERT INTO trading.coded VALUES (1, NULL, 'x'), (2, NULL, 'y')",
		"CREATE TABLE trading.nopk (note VARCHAR(10))",
		"INSERT INTO trading.nopk VALUES ('old')",
	} {
		if err := w.db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	loadRows(t, w.db, "trading.orders", 50)
	lines := table("trading.lines", "initial", 2)
	lines.Key = []string{"code"}
	r := w.start(w.job(
		table("trading.events", "no_data", 1), lines, table("trading.coded", "initial", 2), table("trading.nopk", "initial", 2),
		table("trading.gone", "initial", 2), table("trading.orders", "initial", 2),
	))
	defer r.stop(t)

	waitSnapshot(t, r, "trading.orders", 50)
	want := map[string]string{
		"trading.nopk": "initial load: table trading.nopk has no primary key nor unique index of NOT NULL columns: the initial load needs the columns that identify a row; " +
			`name them with key: [...] on the table, or set snapshot: "no_data" to capture its changes only (with a null key, as Debezium does)`,
		"trading.gone": "initial load: table trading.gone does not exist, or the account has no privilege on it",
	}
	waitParts(t, r.m, func(parts map[string]metrics.PartStatus) bool {
		for name, line := range want {
			if parts[name].Error != line {
				return false
			}
		}
		return true
	})
	if st := r.m.Status(); st.State != metrics.StateRunning {
		t.Fatalf("the source is %s (%s), want running: a table's failure is the table's", st.State, st.Error)
	}

	for _, s := range []string{
		"INSERT INTO trading.events VALUES ('click', 1)",
		"UPDATE trading.lines SET qty = 20 WHERE code = 'b'",
		"UPDATE trading.coded SET n = 20 WHERE code = 'y'",
		"INSERT INTO trading.nopk VALUES ('new')",
		"INSERT INTO trading.orders (id, note, qty) VALUES (1000, 'late', 1)",
	} {
		if err := w.db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		topic string
		n     int
		want  []string // key and op of each record
	}{
		{"trading.trading.events", 1, []string{" c"}},
		{"trading.trading.lines", 4, []string{`{"code":"a"} r`, `{"code":"b"} r`, `{"code":"c"} r`, `{"code":"b"} u`}},
		{"trading.trading.coded", 3, []string{`{"code":"x"} r`, `{"code":"y"} r`, `{"code":"y"} u`}},
		{"trading.trading.nopk", 1, []string{" c"}},
	} {
		rs := w.waitFor(c.topic, fmt.Sprintf("%d records", c.n), func(rs []rec) bool { return len(rs) >= c.n })
		var got []string
		for _, rc := range rs {
			got = append(got, rc.key+" "+decode(t, rc).Op)
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("%s: records (key op) %q, want %q", c.topic, got, c.want)
		}
	}
	w.waitFor("trading.trading.orders", "the late insert", func(rs []rec) bool {
		return len(rs) > 0 && strings.Contains(rs[len(rs)-1].value, `"note":"late"`)
	})
}

// waitParts waits until the job's parts satisfy ok.
func waitParts(t *testing.T, m *metrics.Job, ok func(map[string]metrics.PartStatus) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok(m.Status().Parts) {
		if time.Now().After(deadline) {
			t.Fatalf("parts never reached the expected state: %+v", m.Status().Parts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
