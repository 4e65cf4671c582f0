package sink_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/cdc/event"
	"github.com/ferry-pipelines/ferry/runtime/sink"
)

// TestEnsureConcurrent starts eight sinks at once into one new schema,
// four tables twice each: every one prepares its target without an error
// (creating the schema and the shared offsets table raced before), and
// the tables are there.
func TestEnsureConcurrent(t *testing.T) {
	pg := devtest.Postgres(t, devenv.PostgresOptions{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(ctx, pg.DSN())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(ctx)
			tbl := &sink.Table{Source: "shop.t", Schema: "fresh", Name: fmt.Sprintf("t%d", i%4), Key: []int{0}, Columns: []sink.Column{
				{Source: "id", Target: "id", Kind: event.KindInt, PG: "bigint", Key: true},
				{Source: "v", Target: "v", Kind: event.KindString, PG: "text"},
			}}
			errs <- tbl.Ensure(ctx, c)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a sink failed to start: %v", err)
		}
	}
	c, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'fresh'").Scan(&n); err != nil || n != 9 {
		t.Fatalf("schema fresh holds %d tables (%v), want 4 targets, 4 version tables and the offsets table", n, err)
	}
}
