// Command ferry validates and compiles pipeline definitions, diffs plans,
// and runs them: `ferry help` lists the commands.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a command's exit code; its message, if any, has been
// printed already or is printed by main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func exit(code int, err error) error { return &exitError{code: code, err: err} }

// newRoot is the ferry command and its subcommands.
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "ferry",
		Short:         "Pipelines as code for two-datacenter Kafka: mirrors, CDC, latency tiers, shards",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(validateCmd(), compileCmd(), planCmd())
	root.AddCommand(runCmd(), devCmd(), statusCmd(), dlqCmd(), demoCmd())
	root.AddCommand(applyCmd())
	root.AddCommand(offsetsCmd())
	root.AddCommand(loadCmd(), verifyCmd())
	return root
}

func main() {
	err := newRoot().Execute()
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		err = ee.err
	}
	if err != nil && err.Error() != "" {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// dirArg is the definitions directory: the first argument, or ".".
func dirArg(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return "."
}
