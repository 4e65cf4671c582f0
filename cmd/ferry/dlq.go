package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/dlq"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
)

func dlqCmd() *cobra.Command {
	var planFile string
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect and replay a job's dead letters (ferry.dlq in its target datacenter)",
	}
	cmd.PersistentFlags().StringVar(&planFile, "plan", "", "read datacenters from the plan `FILE` instead of compiling DIR")
	list := &cobra.Command{
		Use:   "list JOB [DIR]",
		Short: "List the job's dead letters: where they came from, why they failed, whether replayed",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := dlqTarget(args, planFile)
			if err != nil {
				return err
			}
			entries, err := dlq.List(cmd.Context(), opts, args[0])
			if err != nil {
				return exit(1, err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "DLQ\tTOPIC\tPARTITION\tOFFSET\tBYTES\tCLASS\tREPLAYED\tMESSAGE")
			for _, e := range entries {
				fmt.Fprintf(tw, "%d@%d\t%s\t%d\t%d\t%d\t%s\t%v\t%s\n", e.DLQPartition, e.DLQOffset, e.Topic, e.Partition, e.Offset, e.Bytes, e.Class, e.Replayed, e.Message)
			}
			tw.Flush()
			fmt.Fprintf(cmd.OutOrStdout(), "%d dead letters\n", len(entries))
			return nil
		},
	}
	replay := &cobra.Command{
		Use:   "replay JOB [DIR]",
		Short: "Re-deliver the job's dead letters to their final target, exactly once",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := dlqTarget(args, planFile)
			if err != nil {
				return err
			}
			res, err := dlq.Replay(cmd.Context(), opts, args[0])
			if err != nil {
				return exit(1, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "replayed %d, already replayed %d, still failing %d\n", res.Replayed, res.Skipped, len(res.Failed))
			for _, f := range res.Failed {
				fmt.Fprintln(cmd.OutOrStdout(), "  failing:", f)
			}
			if len(res.Failed) > 0 {
				return exit(1, nil)
			}
			return nil
		},
	}
	cmd.AddCommand(list, replay)
	return cmd
}

// dlqTarget finds the job in the plan and returns the client options of the
// datacenter its dead letters go to, with the job's compression.
func dlqTarget(args []string, planFile string) ([]kgo.Opt, error) {
	var p *plan.Plan
	var err error
	if planFile != "" {
		p, err = readPlan(planFile)
	} else {
		p, err = compileWith(dirArg(args[1:]), "", "")
	}
	if err != nil {
		return nil, exit(1, err)
	}
	j := p.Job(args[0])
	if j == nil {
		return nil, exit(1, fmt.Errorf("no job %s in the plan", args[0]))
	}
	dc := ""
	switch {
	case j.Mirror != nil:
		dc = j.Mirror.To
	case j.CDC != nil:
		dc = j.CDC.Datacenter
	}
	opts, err := kafkaconn.Options(p.Datacenters[dc])
	if err != nil {
		return nil, exit(1, fmt.Errorf("datacenter %s: %w", dc, err))
	}
	// Replay compresses as the job does, so that a letter the job's
	// producer would have written fits and one it could not still fails.
	return append(opts, kafkaconn.Compress(j.Client.Compression)), nil
}
