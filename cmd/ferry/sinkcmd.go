package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/sink"
	"github.com/ferry-pipelines/ferry/runtime/sink/bulk"
)

// sinkFlags are the flags `ferry load` and `ferry verify` share.
type sinkFlags struct {
	planFile    string
	chunkSize   int
	parallelism int
}

func (f *sinkFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.planFile, "plan", "", "read the plan `FILE` instead of compiling DIR")
	cmd.Flags().IntVar(&f.chunkSize, "chunk-size", bulk.DefaultChunkSize, "rows per primary key `N`")
	cmd.Flags().IntVar(&f.parallelism, "parallel", bulk.DefaultParallelism, "chunks read at once, each on its own snapshot connection")
}

// sinkOf is a sink job of the plan with its connections ready.
type sinkOf struct {
	job     plan.Job
	s       *plan.SinkJob
	table   *sink.Table
	source  binlog.Config
	kafka   []kgo.Opt
	connect bulk.Connect
}

// openSink finds the sink of TABLE in the plan (DIR compiled, or --plan)
// and reads the source table's shape. TABLE is "db.table", or
// "SOURCE:db.table" when several sources capture a table of that name, or
// the job ID.
func openSink(ctx context.Context, args []string, f sinkFlags) (*sinkOf, error) {
	var p *plan.Plan
	var err error
	if f.planFile != "" {
		p, err = readPlan(f.planFile)
	} else {
		p, _, err = compiler.CompileDir(dirArg(args[1:]))
	}
	if err != nil {
		return nil, err
	}
	name := strings.TrimPrefix(args[0], "sink:")
	var found []plan.Job
	var all []string
	for _, j := range p.Jobs {
		if j.Sink == nil {
			continue
		}
		all = append(all, j.Sink.Table)
		if j.Sink.Table == name || j.Sink.Source+":"+j.Sink.Table == name {
			found = append(found, j)
		}
	}
	switch {
	case len(found) == 0:
		sort.Strings(all)
		return nil, fmt.Errorf("no sink for table %s in the plan (tables with a sink: %s)", args[0], strings.Join(all, ", "))
	case len(found) > 1:
		return nil, fmt.Errorf("table %s has sinks from several sources: name it as SOURCE:%s", args[0], name)
	}
	so := &sinkOf{job: found[0], s: found[0].Sink}
	if so.source, err = sink.SourceConfig(so.job.ID, so.s); err != nil {
		return nil, err
	}
	dc, ok := p.Datacenters[so.s.Datacenter]
	if !ok {
		return nil, fmt.Errorf("%s: datacenter %s is not in the plan", so.job.ID, so.s.Datacenter)
	}
	if so.kafka, err = kafkaconn.Options(dc); err != nil {
		return nil, fmt.Errorf("datacenter %s: %w", so.s.Datacenter, err)
	}
	so.connect = func(ctx context.Context) (*pgx.Conn, error) { return sink.ConnectTarget(ctx, so.job.ID, so.s) }
	my, err := sink.ConnectSource(ctx, so.job.ID, so.s)
	if err != nil {
		return nil, err
	}
	defer my.Close()
	if so.table, err = sink.LoadTable(my, so.s); err != nil {
		return nil, fmt.Errorf("%s: %w", so.job.ID, err)
	}
	return so, nil
}

func (so *sinkOf) options(f sinkFlags) bulk.Options {
	return bulk.Options{ChunkSize: f.chunkSize, Parallelism: f.parallelism}
}
