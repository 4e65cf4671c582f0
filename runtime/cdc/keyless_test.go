package cdc

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
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
//   - trading.nopk has no key and snapshot initial: it is read whole, with
//     a null key, as Debezium reads it.
//   - trading.big has no key and more records than a table without a key
//     may hold in memory (1 MiB here): its load fails with a line on the
//     table in the job's status.
//   - trading.gone does not exist: its load fails with a line too.
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
		"CREATE TABLE trading.big (note VARCHAR(100))",
		"INSERT INTO trading.big SELECT REPEAT('x', 100) FROM trading.seq_1_to_5000",
	} {
		if err := w.db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	loadRows(t, w.db, "trading.orders", 50)
	defer func(b int64) { wholeTableBytes = b }(wholeTableBytes)
	wholeTableBytes = 1 << 20
	lines := table("trading.lines", "initial", 2)
	lines.Key = []string{"code"}
	r := w.start(w.job(
		table("trading.events", "no_data", 1), lines, table("trading.coded", "initial", 2), table("trading.nopk", "initial", 2),
		table("trading.gone", "initial", 2), table("trading.orders", "initial", 2), table("trading.big", "initial", 2),
	))
	defer r.stop(t)

	waitSnapshot(t, r, "trading.orders", 50)
	waitSnapshot(t, r, "trading.nopk", 1)
	want := map[string]string{
		"trading.gone": "initial load: table trading.gone does not exist, or the account has no privilege on it",
		"trading.big": "initial load: table trading.big has no key and its records take more than 1 MiB: a table without a key is read whole, in memory; " +
			`name the columns that identify a row with key: [...] on the table, or set snapshot: "no_data" to capture its changes only`,
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
		{"trading.trading.nopk", 2, []string{" r", " c"}},
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

// TestKeylessLoadUnderChanges: a table without a key, read whole while it
// changes, gives r events that are the table at the position in their
// source block: those rows, with the changes after that position, are the
// table's rows, each as often as the table holds it. The first read is
// changed between its position and its SELECT (an insert of a row equal
// to others, an update, a delete), so it is not the table at its
// position and must be read again; more changes go on during the load.
// Every record has a null key.
func TestKeylessLoadUnderChanges(t *testing.T) {
	w := newWorld(t)
	if err := w.db.Exec(
		"CREATE TABLE trading.ticks (kind VARCHAR(10), n INT)",
		"INSERT INTO trading.ticks SELECT ELT(1 + seq % 3, 'a', 'b', 'c'), seq % 40 FROM trading.seq_1_to_3000",
	); err != nil {
		t.Fatal(err)
	}
	changes := []string{
		"INSERT INTO trading.ticks VALUES ('a', %d)",
		"UPDATE trading.ticks SET n = n + 100 WHERE n = %d LIMIT 1",
		"DELETE FROM trading.ticks WHERE n = %d LIMIT 1",
	}
	var hooked atomic.Bool
	testHookBeforeSelect = func(table string) {
		if table == "trading.ticks" && hooked.CompareAndSwap(false, true) {
			for i, c := range changes {
				if err := w.db.Exec(fmt.Sprintf(c, i)); err != nil {
					t.Error(err)
				}
			}
		}
	}
	defer func() { testHookBeforeSelect = nil }()
	done := make(chan error, 1)
	go func() {
		for i := range 90 {
			if err := w.db.Exec(fmt.Sprintf(changes[i%3], i%40)); err != nil {
				done <- err
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		done <- nil
	}()
	r := w.start(w.job(table("trading.ticks", "initial", 2)))
	defer r.stop(t)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, r, "trading.ticks", 1)
	w.waitCaughtUp(r)
	if !hooked.Load() {
		t.Fatal("the load's SELECT never ran")
	}

	rows, err := w.db.Query("SELECT kind, n FROM trading.ticks")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, row := range rows {
		want[row[0]+"/"+row[1]]++
	}
	var at struct {
		file string
		pos  int64
	}
	rs := w.read("trading.trading.ticks")
	var evs []envelope
	for _, x := range rs {
		if !x.nullKey {
			t.Fatalf("record with key %q, want a null key", x.key)
		}
		if !x.tomb {
			evs = append(evs, decode(t, x))
		}
	}
	for _, e := range evs {
		if e.Op == "r" {
			at.file, at.pos = e.Source.File, e.Source.Pos
		}
	}
	got := map[string]int{}
	var loaded int
	for _, e := range evs {
		if e.Op == "r" {
			loaded++
		} else if e.Source.File == at.file && e.Source.Pos <= at.pos {
			continue // up to the load's position: in its rows
		}
		for sign, row := range map[int]map[string]any{-1: e.Before, 1: e.After} {
			if row != nil {
				got[fmt.Sprintf("%v/%v", row["kind"], row["n"])] += sign
			}
		}
	}
	for k, n := range got {
		if n == 0 {
			delete(got, k)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the load's rows and the changes after their position are not the table (-table +topic):\n%s", diff)
	}
	if loaded < 2950 {
		t.Errorf("%d rows loaded, want about 3000", loaded)
	}
}

// TestUnreadableTable: a table whose TABLE_MAP ferry cannot turn into
// events (its declared key names a column a DDL statement renamed) is that
// table's failure: each of its rows events goes to ferry.dlq with its
// bytes and the line shows on the table, while the source's other tables
// stream on. Fixing the key (renaming the column back) ends the failure.
func TestUnreadableTable(t *testing.T) {
	w := newWorld(t)
	if err := w.db.Exec(
		"CREATE TABLE trading.coded (code VARCHAR(10) NOT NULL, qty INT)",
		"CREATE TABLE trading.orders (id INT PRIMARY KEY, qty INT)",
	); err != nil {
		t.Fatal(err)
	}
	coded := table("trading.coded", "no_data", 2)
	coded.Key = []string{"code"}
	r := w.start(w.job(coded, table("trading.orders", "no_data", 1)))
	defer r.stop(t)

	if err := w.db.Exec(
		"INSERT INTO trading.coded VALUES ('a', 1)",
		"ALTER TABLE trading.coded CHANGE code label VARCHAR(10) NOT NULL",
		"INSERT INTO trading.coded VALUES ('b', 2)",
		"INSERT INTO trading.orders VALUES (1, 1)",
	); err != nil {
		t.Fatal(err)
	}
	w.waitFor("trading.trading.orders", "the insert after the failure", func(rs []rec) bool { return len(rs) == 1 })
	var line string
	waitParts(t, r.m, func(parts map[string]metrics.PartStatus) bool {
		line = parts["trading.coded"].Error
		return line != ""
	})
	if !strings.HasPrefix(line, "binlog binlog.000") ||
		!strings.HasSuffix(line, `: trading.coded: key: table trading.coded has no column "code" (the event is in ferry.dlq)`) {
		t.Errorf("trading.coded shows %q", line)
	}
	if st := r.m.Status(); st.State != metrics.StateRunning {
		t.Fatalf("the source is %s (%s), want running", st.State, st.Error)
	}
	letters := w.waitFor(systopics.DLQ, "the unreadable insert", func(rs []rec) bool { return len(rs) == 1 })
	if !strings.Contains(letters[0].value, `"binlog_event":"`) || !strings.Contains(letters[0].value, `"op":"c"`) {
		t.Errorf("dead letter %s lacks the event's bytes or its op", letters[0].value)
	}

	if err := w.db.Exec(
		"ALTER TABLE trading.coded CHANGE label code VARCHAR(10) NOT NULL",
		"INSERT INTO trading.coded VALUES ('c', 3)",
	); err != nil {
		t.Fatal(err)
	}
	rs := w.waitFor("trading.trading.coded", "the inserts before and after", func(rs []rec) bool { return len(rs) == 2 })
	if rs[0].key != `{"code":"a"}` || rs[1].key != `{"code":"c"}` {
		t.Errorf("trading.coded keys %q, %q; want a and c", rs[0].key, rs[1].key)
	}
	waitParts(t, r.m, func(parts map[string]metrics.PartStatus) bool { return parts["trading.coded"].Error == "" })
}
