package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// printJobs prints one line per job of the shard (all jobs for ""), as
// `ferry run` does on start.
func printJobs(w io.Writer, p *plan.Plan, shard string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	n := 0
	for _, j := range p.Jobs {
		if shard != "" && j.Shard != shard {
			continue
		}
		n++
		fmt.Fprintf(tw, "job %s\t%s\tshard %s\ttier %d (%s)\t%s\n", j.ID, j.Kind, j.Shard, j.Tier, j.Budget, describe(j))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d jobs\n", n)
}

func describe(j plan.Job) string {
	switch {
	case j.Mirror != nil:
		return fmt.Sprintf("%s -> %s, %d partitions", j.Mirror.From, j.Mirror.To, j.Mirror.Partitions)
	case j.CDC != nil:
		return fmt.Sprintf("%s -> %s, %d tables", j.CDC.MySQL.Address, j.CDC.Datacenter, len(j.CDC.Tables))
	}
	return ""
}

func shardNames(p *plan.Plan) string {
	names := make([]string, 0, len(p.Shards))
	for n := range p.Shards {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
