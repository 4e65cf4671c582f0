package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func validateCmd() *cobra.Command {
	var with string
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check every .cue file of DIR; print all problems as file:line:col: message",
		Long: `Validate loads every .cue file of DIR (default: the working directory),
checks it against ferry's schema and cross references, and prints every
problem on stderr as file:line:col: message. Exit status 0 when valid, 1 when
not. With --with FILE (GET /v1/definitions of an executor group, saved), DIR
is checked together with what others declare there, offline: a directory
that places its mirrors on datacenters and shards another owner declares.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := compileWith(dirArg(args), "", with)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid, %d jobs\n", dirArg(args), len(p.Jobs))
			return nil
		},
	}
	cmd.Flags().StringVar(&with, "with", "", withUsage)
	return cmd
}
