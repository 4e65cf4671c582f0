package sink_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/dlq"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// TestDeadLetters: an event PostgreSQL refuses (a value too long for the
// target's varchar(5)) goes to ferry.dlq with the error headers while the
// table's other events are applied; once the target takes it (the column
// widened), `ferry dlq replay` puts it back on its topic and the sink
// applies it, once.
func TestDeadLetters(t *testing.T) {
	w := newWorld(t)
	w.mysql("CREATE TABLE trading.notes (id INT PRIMARY KEY, body VARCHAR(40))")
	pg := w.pgConn(context.Background())
	if _, err := pg.Exec(context.Background(), "CREATE TABLE public.notes (id integer NOT NULL PRIMARY KEY, body varchar(5))"); err != nil {
		t.Fatal(err)
	}
	p := w.buildPlan(sinkTable{name: "trading.notes", snapshot: "no_data", tier: 2})
	w.run(p)
	w.mysql("INSERT INTO trading.notes VALUES (1, 'ok')", "INSERT INTO trading.notes VALUES (2, 'much too long')", "INSERT INTO trading.notes VALUES (3, 'fine')")
	rows := func() string { return fmt.Sprint(w.pgQuery("SELECT id::text, body FROM public.notes n ORDER BY n.id")) }
	waitFor(t, 30*time.Second, "rows 1 and 3 in the target", func() (bool, string) {
		got := rows()
		return got == "[[1 ok] [3 fine]]", got
	})

	job := plan.SinkJobID("trading-db", "trading.notes")
	opts, err := kafkaconn.Options(w.plan.Datacenters["dc1"])
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	entries, err := dlq.List(ctx, opts, job)
	if err != nil || len(entries) != 1 {
		t.Fatalf("dlq.List = %+v, %v; want the event of row 2", entries, err)
	}
	e := entries[0]
	if e.Topic != "trading.trading.notes" || e.Class != "apply" || !strings.Contains(e.Message, "value too long for type character varying(5)") {
		t.Errorf("dead letter %+v", e)
	}
	if st := w.ex.Registry().Lookup(job).Status(); st.State != metrics.StateRunning || st.Parts["trading.notes"].Counters[metrics.DeadLetters] != 1 {
		t.Errorf("sink %s, %v dead letters; want running with 1", st.State, st.Parts["trading.notes"].Counters)
	}

	if _, err := pg.Exec(ctx, "ALTER TABLE public.notes ALTER COLUMN body TYPE text"); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{1, 0} {
		res, err := dlq.Replay(ctx, opts, job)
		if err != nil || res.Replayed != want || len(res.Failed) != 0 {
			t.Fatalf("replay %d = %+v, %v; want %d replayed", i+1, res, err, want)
		}
	}
	waitFor(t, 30*time.Second, "row 2 applied after replay", func() (bool, string) {
		got := rows()
		return got == "[[1 ok] [2 much too long] [3 fine]]", got
	})
}
