package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-pipelines/ferry/compiler/observe"
	"github.com/ferry-pipelines/ferry/compiler/plan"
)

func planCmd() *cobra.Command {
	var from string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plan [DIR] --from OLD.json",
		Short: "Show what changes against an older plan: jobs added, removed, changed, moved",
		Long: `Plan compiles DIR (keeping the placements of OLD.json) and prints what
differs from OLD.json: jobs added (+), removed (-), changed (~, field: old ->
new) and moved between shards (>), and the alert rules and dashboard ferry
compile --alerts and --dashboard write that change with them. --json prints
the same as JSON for tools.
Exit status 0 when nothing changes, 2 when something does, 1 on error.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var old *plan.Plan
			if from != "" {
				var err error
				if old, err = readPlan(from); err != nil {
					return exit(1, err)
				}
			}
			p, err := compileWith(dirArg(args), from, "")
			if err != nil {
				return err
			}
			d := plan.Compare(old, p)
			if d.Outputs, err = observe.Changes(old, p); err != nil {
				return exit(1, err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(d); err != nil {
					return exit(1, err)
				}
			} else {
				fmt.Fprint(cmd.OutOrStdout(), d.Text())
			}
			if d.Empty() {
				return nil
			}
			return exit(2, nil)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the older plan `FILE` to compare with (default: an empty plan)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the diff as JSON")
	return cmd
}
