package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/runtime/control"
	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

type applyFlags struct {
	addr, tokenFile, owner string
	dryRun                 bool
}

func applyCmd() *cobra.Command {
	var f applyFlags
	cmd := &cobra.Command{
		Use:   "apply [DIR] --http ADDR",
		Short: "Push the definitions of DIR to a running executor group (the control API)",
		Long: `Apply compiles DIR (default: the working directory) and makes the objects
it owns in the executor group's stored definitions match it, in one atomic
batch: it creates what is new, updates what changed and deletes what DIR no
longer declares. It owns the objects it wrote as cue:NAME, NAME being DIR's
base name (--owner changes it), and refuses to touch objects another owner
wrote (Terraform, another directory), naming that owner. It prints what it
did; exit status 0 on success, 1 when DIR is invalid, an object belongs to
someone else, or the executors refuse the batch.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return apply(cmd.Context(), cmd.OutOrStdout(), dirArg(args), f)
		},
	}
	cmd.Flags().StringVar(&f.addr, "http", "", "the control API of an executor of the group: `ADDR` (host:port) or URL")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "send the bearer token in `FILE` (the executors' --token-file)")
	cmd.Flags().StringVar(&f.owner, "owner", "", "own the objects as `NAME` (default: cue:DIR's base name)")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "check the change with the executors and print it, without writing it")
	_ = cmd.MarkFlagRequired("http")
	return cmd
}

func apply(ctx context.Context, out io.Writer, dir string, f applyFlags) error {
	owner := f.owner
	if owner == "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return exit(1, err)
		}
		owner = api.CUEOwner(filepath.Base(abs))
	}
	opts := []api.ClientOption{api.WithOwner(owner)}
	if f.tokenFile != "" {
		token, err := control.ReadTokenFile(f.tokenFile)
		if err != nil {
			return exit(1, err)
		}
		opts = append(opts, api.WithToken(token))
	}
	c, err := api.NewClient(f.addr, opts...)
	if err != nil {
		return exit(1, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	stored, err := c.Objects(ctx)
	if err != nil {
		return exit(1, err)
	}
	// DIR is compiled with what the group's other owners declare, so it
	// may use their datacenters, shards and tiers.
	shared, err := api.Join(others(stored, owner))
	if err != nil {
		return exit(1, err)
	}
	_, defs, err := compiler.CompileDir(dir, compiler.WithShared(shared))
	if err != nil {
		return exit(1, err)
	}
	want, err := api.Split(defs)
	if err != nil {
		return exit(1, err)
	}
	ops, unchanged, refusals := reconcile(stored, want, owner)
	if len(refusals) > 0 {
		return exit(1, fmt.Errorf("%s\nnothing applied: %d of the objects %s declares belong to other owners", strings.Join(refusals, "\n"), len(refusals), dir))
	}
	verb := "applied"
	if f.dryRun {
		verb = "would apply"
	}
	if len(ops) == 0 {
		fmt.Fprintf(out, "%s as %s: no changes, %d objects up to date\n", dir, owner, unchanged)
		return nil
	}
	res, err := c.Batch(ctx, api.Batch{Ops: ops, DryRun: f.dryRun})
	if err != nil {
		return exit(1, err)
	}
	counts := map[string]int{}
	for _, r := range res.Results {
		counts[r.Action]++
		fmt.Fprintf(out, "%s %s %s\n", actionSign[r.Action], r.Kind, r.Name)
	}
	fmt.Fprintf(out, "%s %s as %s: %d created, %d updated, %d deleted, %d unchanged\n", verb, dir, owner,
		counts[api.Created], counts[api.Updated], counts[api.Deleted], unchanged+counts[api.Unchanged])
	return nil
}

// others are the stored objects owner does not own, with the CDC sources
// of owner's that their tables belong to.
func others(stored []api.Object, owner string) []api.Object {
	sources := map[string]bool{}
	for _, o := range stored {
		if src, _, ok := api.SplitTableName(o.Name); o.Kind == api.CDCTable && o.Owner != owner && ok {
			sources[src] = true
		}
	}
	var out []api.Object
	for _, o := range stored {
		if o.Owner != owner || o.Kind == api.CDCSource && sources[o.Name] {
			out = append(out, o)
		}
	}
	return out
}

var actionSign = map[string]string{api.Created: "+", api.Updated: "~", api.Deleted: "-", api.Unchanged: "="}

// reconcile compares the stored objects with those DIR declares: the ops
// that make owner's objects match (creations and updates in dependency
// order, then deletions in reverse), how many already match, and one line
// for each declared object another owner holds.
func reconcile(stored, want []api.Object, owner string) (ops []api.Op, unchanged int, refusals []string) {
	byKey := map[string]api.Object{}
	for _, o := range stored {
		byKey[api.Key(o.Kind, o.Name)] = o
	}
	declared := map[string]bool{}
	for _, o := range want {
		key := api.Key(o.Kind, o.Name)
		declared[key] = true
		cur, exists := byKey[key]
		switch {
		case exists && cur.Owner != owner:
			refusals = append(refusals, api.OwnedElsewhere(o.Kind, o.Name, cur.Owner))
		case exists && bytes.Equal(cur.Spec, o.Spec):
			unchanged++
		default:
			v := cur.Version // 0 when new: create only
			ops = append(ops, api.Op{Op: api.OpPut, Kind: o.Kind, Name: o.Name, Spec: o.Spec, Version: &v})
		}
	}
	for _, o := range slices.Backward(stored) {
		if o.Owner == owner && !declared[api.Key(o.Kind, o.Name)] {
			v := o.Version
			ops = append(ops, api.Op{Op: api.OpDelete, Kind: o.Kind, Name: o.Name, Version: &v})
		}
	}
	return ops, unchanged, refusals
}
