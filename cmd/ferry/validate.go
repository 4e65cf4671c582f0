package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func validateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check every .cue file of DIR; print all problems as file:line:col: message",
		Long: `Validate loads every .cue file of DIR (default: the working directory),
checks it against ferry's schema and cross references, and prints every
problem on stderr as file:line:col: message. Exit status 0 when valid, 1 when
not.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, _, err := compileDir(dirArg(args))
			if err != nil {
				return exit(1, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid, %d jobs\n", dirArg(args), len(p.Jobs))
			return nil
		},
	}
}
