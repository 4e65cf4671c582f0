package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-pipelines/ferry/runtime/sink/bulk"
)

func verifyCmd() *cobra.Command {
	var f sinkFlags
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "verify TABLE [DIR | --plan FILE]",
		Short: "Compare a CDC table with its sink's target by row counts and checksums per key chunk",
		Long: `Verify compares the source table ("db.table") with the PostgreSQL table its
sink writes, chunk by primary key chunk, while both are live: each
chunk is read in a consistent snapshot at a binlog position P; verify
waits until the sink has applied every change before P (--wait), and
compares what P fixes, leaving out keys the target already holds a newer
version of. Differing chunks are compared once more with new snapshots.
It prints one line per differing key range and exits 2 when the tables
differ, 0 when they are equal, 1 on an error.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return verify(cmd.Context(), args, f, wait)
		},
	}
	f.add(cmd)
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the sink to apply the changes up to a snapshot")
	return cmd
}

func verify(ctx context.Context, args []string, f sinkFlags, wait time.Duration) error {
	so, err := openSink(ctx, args, f)
	if err != nil {
		return exit(1, err)
	}
	applied := bulk.SinkApplied(so.kafka, so.job.ID, so.s, so.table, so.connect, wait)
	res, err := bulk.Verify(ctx, so.table, so.source, so.connect, applied, so.options(f))
	if err != nil {
		return exit(1, fmt.Errorf("verify %s: %w", so.s.Table, err))
	}
	fmt.Printf("%s -> %s at %s: %d rows in the source, %d in the target, %d chunks\n",
		so.s.Table, so.s.Target, res.At, res.SourceRows, res.TargetRows, res.Chunks)
	keys := so.table.KeyNames()
	for _, d := range res.Diffs {
		fmt.Printf("differ: %s %s..%s: %d changed, %d missing, %d extra\n", keys, d.First, d.Last, d.Changed, d.Missing, d.Extra)
	}
	if len(res.Diffs) > 0 {
		fmt.Printf("%s: %d of %d chunks differ\n", so.s.Table, len(res.Diffs), res.Chunks)
		return exit(2, nil)
	}
	fmt.Printf("%s: equal\n", so.s.Table)
	return nil
}
