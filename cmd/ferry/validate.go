package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/sink"
)

func validateCmd() *cobra.Command {
	var with string
	var sources bool
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check every .cue file of DIR; print all problems as file:line:col: message",
		Long: `Validate loads every .cue file of DIR (default: the working directory),
checks it against ferry's schema and cross references, and prints every
problem on stderr as file:line:col: message. Exit status 0 when valid, 1 when
not. With --with FILE (GET /v1/definitions of an executor group, saved), DIR
is checked together with what others declare there, offline: a directory
that places its mirrors on datacenters and shards another owner declares.
With --sources it also connects to the CDC sources (their secrets resolved
as the executors would) and checks what each sink needs of its table: that
it exists, has the columns sink.columns renames, and has a key (a primary
key, a unique index of NOT NULL columns, or key:), each problem on the
table's sink line.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var opts []compiler.Option
			if sources {
				opts = append(opts, compiler.WithJobCheck(func(j plan.Job) error {
					if j.Sink == nil {
						return nil
					}
					ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
					defer cancel()
					return sink.CheckSource(ctx, j.ID, j.Sink)
				}))
			}
			p, err := compileWith(dirArg(args), "", with, opts...)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid, %d jobs\n", dirArg(args), len(p.Jobs))
			return nil
		},
	}
	cmd.Flags().StringVar(&with, "with", "", withUsage)
	cmd.Flags().BoolVar(&sources, "sources", false, "also check, on the CDC sources' servers, that every sink's table exists and has a key")
	return cmd
}
