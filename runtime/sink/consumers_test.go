package sink_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestSharedConsumerIsolation: three tables' sinks share a consumer. One
// target table is locked, so its sink cannot apply; another table gains a
// column, so its sink starts again (leaving the shared consumer and
// joining it anew) to add it; the third goes on meanwhile. Then the lock
// goes and the locked table catches up: a table held up or starting again
// holds up no other.
func TestSharedConsumerIsolation(t *testing.T) {
	w := newWorld(t)
	var sinks []sinkTable
	for i := range 3 {
		name := fmt.Sprintf("trading.s%d", i)
		w.mysql("CREATE TABLE "+name+" (id INT PRIMARY KEY, v INT)", "INSERT INTO "+name+" VALUES (1, 1)")
		sinks = append(sinks, sinkTable{name: name, snapshot: "initial", tier: 1})
	}
	w.run(w.buildPlan(sinks...))
	equal := func(table, want string) {
		t.Helper()
		waitFor(t, 60*time.Second, table+" holds "+want, func() (bool, string) {
			got := fmt.Sprint(w.pgQuery("SELECT id::text, v::text FROM " + table + " ORDER BY id"))
			return got == want, got
		})
	}
	for i := range 3 {
		equal(fmt.Sprintf("public.s%d", i), "[[1 1]]")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lock := w.pgConn(ctx)
	defer lock.Close(context.Background())
	tx, err := lock.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE public.s0 IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	w.mysql("INSERT INTO trading.s0 VALUES (2, 2)",
		"ALTER TABLE trading.s1 ADD COLUMN note VARCHAR(10)", "INSERT INTO trading.s1 VALUES (2, 2, 'new')",
		"INSERT INTO trading.s2 VALUES (2, 2)")
	equal("public.s2", "[[1 1] [2 2]]")
	read := w.pgConn(ctx)
	defer read.Close(context.Background())
	waitFor(t, 60*time.Second, "public.s1 has the new column's value", func() (bool, string) {
		var note string
		err := read.QueryRow(ctx, "SELECT coalesce(note, '-') FROM public.s1 WHERE id = 2").Scan(&note)
		return err == nil && note == "new", fmt.Sprint(note, err)
	})
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	equal("public.s0", "[[1 1] [2 2]]")
}
