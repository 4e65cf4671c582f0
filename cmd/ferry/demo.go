package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/observe"
	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/headers"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/statusapi"
)

func demoCmd() *cobra.Command {
	var duration time.Duration
	var rate int
	cmd := &cobra.Command{
		Use:   "demo [DIR]",
		Short: "The example pipelines end to end on a local world, with traffic and a live view",
		Long: `Demo starts the local world of ` + "`ferry dev`" + ` (dc1 on 127.0.0.1:19092, dc2 on
127.0.0.1:29092), runs the pipelines of DIR (default: pipelines) on it with
the HTTP API on ` + DefaultHTTP + ` (so ` + "`ferry status`" + ` works from another terminal),
produces client traffic into every mirror topic of both datacenters, shows
the jobs every two seconds, and at the end proves that each datacenter holds
the union of both: every record once.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "pipelines"
			if len(args) > 0 {
				dir = args[0]
			}
			return demo(cmd.Context(), cmd.OutOrStdout(), dir, duration, rate)
		},
	}
	cmd.Flags().DurationVar(&duration, "duration", 40*time.Second, "how long the traffic runs (0: until interrupted)")
	cmd.Flags().IntVar(&rate, "rate", 200, "records per second produced into each mirror topic of each datacenter")
	return cmd
}

func demo(ctx context.Context, out io.Writer, dir string, duration time.Duration, rate int) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, _, err := compiler.CompileDir(dir)
	if err != nil {
		return exit(1, err)
	}
	if err := writeObservability(out, p); err != nil {
		return exit(1, err)
	}
	pair, err := devenv.StartPair(devenv.DC1Port, devenv.DC2Port)
	if err != nil {
		return exit(1, err)
	}
	defer pair.Close()
	fmt.Fprintf(out, "dc1 Kafka: %s\ndc2 Kafka: %s\n", pair.DC1.Addr(), pair.DC2.Addr())
	db, err := startTradingDB(out)
	if err != nil {
		return exit(1, err)
	}
	if db != nil {
		defer db.Close()
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ex := executor.New(kinds(logger)...)
	defer ex.Stop()
	srv, err := serve(DefaultHTTP, nil, statusapi.Handler(ex.Registry(), nil), logger)
	if err != nil {
		return exit(1, err)
	}
	defer srv.Close()
	printJobs(out, p, "")
	ex.Apply(ctx, p)
	defer report(ctx, ex, logger)()
	waitAssigned(ctx, ex.Registry(), 30*time.Second)

	traffic, stopTraffic := context.WithCancel(ctx)
	if duration > 0 {
		traffic, stopTraffic = context.WithTimeout(ctx, duration)
	}
	defer stopTraffic()
	produced := make(chan map[string]int, 1)
	go func() { produced <- produceTraffic(traffic, p, rate) }()
	if db != nil {
		go func() { _, _ = db.TradingWriter(traffic, 20) }()
	}
	view := time.NewTicker(2 * time.Second)
	defer view.Stop()
	for traffic.Err() == nil {
		select {
		case <-traffic.Done():
		case <-view.C:
			fmt.Fprintf(out, "\n%s\n", time.Now().Format(time.TimeOnly))
			printStatus(out, statuses(ex.Registry()))
		}
	}
	counts := <-produced
	if ctx.Err() != nil {
		return nil
	}
	fmt.Fprintln(out, "\ntraffic stopped; waiting for the mirrors to catch up")
	if err := proveUnion(ctx, out, p, counts); err != nil {
		return err
	}
	printCDC(out, ex.Registry())
	return nil
}

// printCDC shows what each CDC table captured.
func printCDC(out io.Writer, r *metrics.Registry) {
	for _, s := range statuses(r) {
		if s.Kind != plan.KindCDC {
			continue
		}
		for _, table := range slices.Sorted(maps.Keys(s.Parts)) {
			part := s.Parts[table]
			c := part.Counters
			fmt.Fprintf(out, "%s %s: %d events into Kafka (%d snapshot reads, %d creates, %d updates, %d deletes), p99 %.1f ms, within budget %.2f%%\n",
				s.ID, table, c[metrics.Records], c[metrics.SnapshotRead], c[metrics.Creates], c[metrics.Updates], c[metrics.Deletes], part.Latency.P99, 100*part.WithinBudget)
		}
	}
}

// demoDBPort is where the example pipelines expect the trading database.
const demoDBPort = 13306

// startTradingDB starts the demo's MariaDB with the sample trading schema
// on 127.0.0.1:13306 and gives ferry its password, when MariaDB is
// installed; without it the demo runs the mirrors only.
func startTradingDB(out io.Writer) (*devenv.MariaDB, error) {
	if _, _, err := devenv.MariaDBBinaries(); err != nil {
		fmt.Fprintf(out, "MariaDB is not installed (%v): the CDC source will wait\n", err)
		return nil, nil
	}
	db, err := devenv.StartMariaDB(devenv.MariaDBOptions{Port: demoDBPort})
	if err != nil {
		return nil, err
	}
	if err := db.CreateTrading(1000); err != nil {
		db.Close()
		return nil, err
	}
	if os.Getenv("TRADING_DB_PASSWORD") == "" {
		os.Setenv("TRADING_DB_PASSWORD", devenv.FerryPassword)
	}
	fmt.Fprintf(out, "MariaDB: %s (database trading, 1000 orders)\n", db.Addr())
	return db, nil
}

// waitAssigned waits until every mirror job has its partitions, so that
// the traffic's first records do not wait for group joins.
func waitAssigned(ctx context.Context, r *metrics.Registry, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ready := true
		for _, s := range statuses(r) {
			if s.Kind == plan.KindMirror && len(s.Partitions) == 0 {
				ready = false
			}
		}
		if ready {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func statuses(r *metrics.Registry) []metrics.Status {
	var out []metrics.Status
	for _, j := range r.Jobs() {
		out = append(out, j.Status())
	}
	return out
}

// produceTraffic writes client records into every mirror topic of every
// datacenter until ctx ends, and returns how many it wrote per "dc/topic".
func produceTraffic(ctx context.Context, p *plan.Plan, rate int) map[string]int {
	counts := map[string]int{}
	topics := map[string][]string{} // dc -> mirror topics
	for _, j := range p.Jobs {
		if j.Mirror != nil {
			topics[j.Mirror.From] = appendOnce(topics[j.Mirror.From], j.Mirror.Topic)
		}
	}
	clients := map[string]*kgo.Client{}
	for dc := range topics {
		opts, err := kafkaconn.Options(p.Datacenters[dc])
		if err != nil {
			continue
		}
		cl, err := kgo.NewClient(append(opts, kgo.ProducerLinger(5*time.Millisecond))...)
		if err != nil {
			continue
		}
		defer cl.Close()
		clients[dc] = cl
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			for _, cl := range clients {
				_ = cl.Flush(context.Background())
			}
			return counts
		case <-tick.C:
		}
		for dc, cl := range clients {
			for _, topic := range topics[dc] {
				for i := 0; i < max(rate/10, 1); i++ {
					n := counts[dc+"/"+topic]
					counts[dc+"/"+topic]++
					cl.Produce(context.Background(), &kgo.Record{
						Topic: topic,
						Key:   []byte(dc + "-" + strconv.Itoa(n)),
						Value: []byte(fmt.Sprintf(`{"dc":%q,"n":%d,"at":%q}`, dc, n, time.Now().Format(time.RFC3339Nano))),
					}, nil)
				}
			}
		}
	}
}

// proveUnion reads every mirror topic in every datacenter and checks that
// it holds each record produced in any datacenter exactly once.
func proveUnion(ctx context.Context, out io.Writer, p *plan.Plan, produced map[string]int) error {
	topicDCs := map[string][]string{}
	for _, j := range p.Jobs {
		if j.Mirror != nil {
			topicDCs[j.Mirror.Topic] = appendOnce(topicDCs[j.Mirror.Topic], j.Mirror.From)
		}
	}
	topics := make([]string, 0, len(topicDCs))
	for t := range topicDCs {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	ok := true
	for _, topic := range topics {
		dcs := topicDCs[topic]
		sort.Strings(dcs)
		want := 0
		for _, dc := range dcs {
			want += produced[dc+"/"+topic]
		}
		for _, dc := range dcs {
			local, mirrored, dups, err := countUnion(ctx, p, dc, topic, want)
			if err != nil {
				return exit(1, err)
			}
			verdict := "the union, each record once"
			if local+mirrored != want || dups > 0 {
				verdict = fmt.Sprintf("NOT the union: want %d, %d duplicated", want, dups)
				ok = false
			}
			fmt.Fprintf(out, "%s in %s: %d local + %d mirrored = %d: %s\n", topic, dc, local, mirrored, local+mirrored, verdict)
		}
	}
	if !ok {
		return exit(1, fmt.Errorf("a datacenter does not hold the union"))
	}
	return nil
}

// countUnion reads topic in dc until it holds want records or the mirrors
// have had a minute to catch up.
func countUnion(ctx context.Context, p *plan.Plan, dc, topic string, want int) (local, mirrored, dups int, err error) {
	opts, err := kafkaconn.Options(p.Datacenters[dc])
	if err != nil {
		return 0, 0, 0, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return 0, 0, 0, err
	}
	defer cl.Close()
	seen := map[string]bool{}
	deadline, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for local+mirrored < want && deadline.Err() == nil {
		cl.PollFetches(deadline).EachRecord(func(r *kgo.Record) {
			if seen[string(r.Key)] {
				dups++
			}
			seen[string(r.Key)] = true
			for _, h := range r.Headers {
				if h.Key == headers.Origin {
					mirrored++
					return
				}
			}
			local++
		})
	}
	return local, mirrored, dups, nil
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// writeObservability writes the plan's Prometheus rules and Grafana
// dashboard (what ferry compile --alerts and --dashboard write) into
// .ferry-demo/ and says where.
func writeObservability(out io.Writer, p *plan.Plan) error {
	if err := os.MkdirAll(".ferry-demo", 0o755); err != nil {
		return err
	}
	for _, o := range []struct {
		file string
		gen  func(*plan.Plan) ([]byte, error)
		what string
	}{
		{"alerts.yaml", observe.Rules, "Prometheus rules (ferry compile --alerts)"},
		{"dashboard.json", observe.Dashboard, "Grafana dashboard (ferry compile --dashboard)"},
	} {
		b, err := o.gen(p)
		if err != nil {
			return err
		}
		path := filepath.Join(".ferry-demo", o.file)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: %s\n", o.what, path)
	}
	return nil
}
