package sink_test

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestSinksShareConnections runs a sink per table for twelve tables of two
// tiers into one database: every row arrives, the executor holds at most a
// pool per tier of connections to it, not one per table, and its sinks
// consume through one Kafka consumer (one group member) per tier.
func TestSinksShareConnections(t *testing.T) {
	w := newWorld(t)
	const tables = 12
	var sinks []sinkTable
	for i := range tables {
		name := fmt.Sprintf("trading.t%02d", i)
		w.mysql("CREATE TABLE "+name+" (id INT PRIMARY KEY, v INT)", "INSERT INTO "+name+" VALUES (1, 1), (2, 2)")
		sinks = append(sinks, sinkTable{name: name, snapshot: "initial", tier: 1 + i%2})
	}
	w.run(w.buildPlan(sinks...))
	for i := range tables {
		w.mysql(fmt.Sprintf("INSERT INTO trading.t%02d VALUES (3, 3), (4, 4)", i), fmt.Sprintf("UPDATE trading.t%02d SET v = v + 10", i))
	}
	for i := range tables {
		table := fmt.Sprintf("public.t%02d", i)
		waitFor(t, 60*time.Second, table+" equals its source", func() (bool, string) {
			got := fmt.Sprint(w.pgQuery("SELECT id::text, v::text FROM " + table + " ORDER BY id"))
			return got == "[[1 11] [2 12] [3 13] [4 14]]", got
		})
	}
	conns, err := strconv.Atoi(w.pgScalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"))
	if err != nil {
		t.Fatal(err)
	}
	if most := 2 * max(4, runtime.NumCPU()); conns > most || conns >= tables {
		t.Fatalf("the sinks of %d tables hold %d connections to their database, want at most %d (a pool per tier)", tables, conns, most)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listed, err := w.admin().ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	groups := slices.Sorted(maps.Keys(listed))
	if want := []string{"ferry.default.sinks.dc1.t1", "ferry.default.sinks.dc1.t2"}; !slices.Equal(groups, want) {
		t.Fatalf("the sinks of %d tables consume in the groups %q, want %q (a consumer per tier)", tables, groups, want)
	}
	t.Logf("%d sinks, %d connections, groups %q", tables, conns, groups)
}
