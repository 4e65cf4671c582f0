package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/sink/bulk"
)

func loadCmd() *cobra.Command {
	var f sinkFlags
	cmd := &cobra.Command{
		Use:   "load TABLE [DIR | --plan FILE]",
		Short: "Copy a CDC table into its sink's target at a recorded position, in parallel chunks",
		Long: `Load copies the source table ("db.table") into the PostgreSQL table its
sink writes, while the sink streams: the table is cut into primary key
chunks, read in parallel, each worker in a consistent snapshot whose
binlog position it records, and every row is written with that
position as its version. A streamed change newer than the snapshot wins
over the loaded row, an older one loses to it, and a key deleted after
the snapshot stays deleted. This completes a table declared with
snapshot "no_data": its stream starts at the source's start, the load
fills in the rows from before. The CDC source must have started (its
checkpoint says where the table's stream begins).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return load(cmd.Context(), args, f)
		},
	}
	f.add(cmd)
	return cmd
}

func load(ctx context.Context, args []string, f sinkFlags) error {
	so, err := openSink(ctx, args, f)
	if err != nil {
		return exit(1, err)
	}
	if err := func() error {
		pg, err := so.connect(ctx)
		if err != nil {
			return err
		}
		defer pg.Close(context.Background())
		return so.table.Ensure(ctx, pg)
	}(); err != nil {
		return exit(1, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	capture, err := bulk.LoadCapture(cctx, so.kafka, plan.CDCJobID(so.s.Source), so.s.Table)
	cancel()
	if err != nil {
		return exit(1, err)
	}
	opts := so.options(f)
	last := time.Now()
	opts.Progress = func(done, total int) {
		if time.Since(last) >= 5*time.Second || done == total {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "%s: %d of %d chunks\n", so.s.Table, done, total)
		}
	}
	start := time.Now()
	res, err := bulk.Load(ctx, so.table, so.source, so.connect, capture.Since, opts)
	if err != nil {
		return exit(1, fmt.Errorf("load %s: %w", so.s.Table, err))
	}
	took := time.Since(start)
	at := res.From.String()
	if res.To != res.From {
		at += " to " + res.To.String()
	}
	fmt.Printf("loaded %d rows of %s into %s in %s (%.0f rows/s) at %s: %d written, %d kept a newer streamed version\n",
		res.Rows, so.s.Table, so.s.Target, took.Round(time.Millisecond), float64(res.Rows)/max(took.Seconds(), 1e-9), at, res.Written, res.Rows-res.Written)
	return nil
}
