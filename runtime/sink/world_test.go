package sink

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/cdc"
	"github.com/ferry-pipelines/ferry/runtime/devenv"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/schema"
)

// Environment variables the test plans name for their secrets.
const (
	passEnv = "FERRY_SINK_TEST_PASSWORD"
	dsnEnv  = "FERRY_SINK_TEST_DSN"
)

// world is a MariaDB, a PostgreSQL and a Kafka cluster for one test, with
// a CDC source and its sinks run by an executor in this process.
type world struct {
	t     testing.TB
	db    *devenv.MariaDB
	pg    *devenv.Postgres
	kafka *devenv.Kafka
	plan  *plan.Plan
	ex    *executor.Executor
	stop  context.CancelFunc
}

func newWorld(t testing.TB) *world {
	t.Helper()
	if _, _, err := devenv.MariaDBBinaries(); err != nil {
		t.Skip(err)
	}
	if _, _, err := devenv.PostgresBinaries(); err != nil {
		t.Skip(err)
	}
	w := &world{t: t}
	errs := make(chan error, 3)
	go func() {
		var err error
		w.db, err = devenv.StartMariaDB(devenv.MariaDBOptions{})
		errs <- err
	}()
	go func() {
		var err error
		w.pg, err = devenv.StartPostgres(devenv.PostgresOptions{})
		errs <- err
	}()
	go func() {
		var err error
		w.kafka, err = devenv.StartKafka("dc1", 0)
		errs <- err
	}()
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if w.stop != nil {
			w.stop()
			w.ex.Stop()
		}
		w.kafka.Close()
		w.pg.Close()
		w.db.Close()
	})
	t.Setenv(passEnv, devenv.FerryPassword)
	t.Setenv(dsnEnv, w.pg.DSN())
	w.mysql("CREATE DATABASE trading")
	return w
}

// mysql runs statements on the source as root.
func (w *world) mysql(stmts ...string) {
	w.t.Helper()
	if err := w.db.Exec(stmts...); err != nil {
		w.t.Fatal(err)
	}
}

// sinkTable is a captured table with a sink, as the compiler would plan it.
type sinkTable struct {
	name     string // "trading.orders"
	snapshot string
	tier     int
	target   string            // default public.<table>
	columns  map[string]string // renames
}

var budgets = map[int]time.Duration{1: 300 * time.Millisecond, 2: 10 * time.Second, 3: 10 * time.Minute, 4: time.Hour}

var clients = map[int]plan.ClientSettings{
	1: {BatchMaxBytes: 256 << 10, FetchMaxWait: plan.Duration(10 * time.Millisecond), FetchMinBytes: 1, Compression: "none", CommitInterval: plan.Duration(10 * time.Millisecond)},
	2: {Linger: plan.Duration(5 * time.Millisecond), BatchMaxBytes: 512 << 10, FetchMaxWait: plan.Duration(100 * time.Millisecond), FetchMinBytes: 1, Compression: "lz4", CommitInterval: plan.Duration(100 * time.Millisecond)},
}

// buildPlan plans the CDC source of the tables and a sink for each.
func (w *world) buildPlan(tables ...sinkTable) *plan.Plan {
	my := schema.MySQL{
		Address: w.db.Addr(), User: devenv.FerryUser, Password: schema.Secret{Env: passEnv}, ServerID: 5401,
		Heartbeat: &schema.Heartbeat{Interval: "20ms"},
	}
	src := plan.Job{
		ID: plan.CDCJobID("trading-db"), Kind: plan.KindCDC, Shard: "default", Tier: 1,
		Budget: plan.Duration(budgets[1]), Client: clients[1],
		CDC: &plan.CDCJob{Source: "trading-db", MySQL: my, Datacenter: "dc1", TopicPrefix: "trading",
			Snapshot: schema.SnapshotSettings{ChunkSize: 500, Parallelism: 2}},
	}
	jobs := []plan.Job{src}
	for _, st := range tables {
		db, tbl, _ := strings.Cut(st.name, ".")
		tier := max(st.tier, 1)
		src.CDC.Tables = append(src.CDC.Tables, plan.CDCTable{Name: st.name, Database: db, Table: tbl, Topic: "trading." + st.name,
			Tier: tier, Budget: plan.Duration(budgets[tier]), Snapshot: st.snapshot})
		target := st.target
		if target == "" {
			target = "public." + tbl
		}
		jobs = append(jobs, plan.Job{
			ID: plan.SinkJobID("trading-db", st.name), Kind: plan.KindSink, Shard: "default", Tier: tier,
			Budget: plan.Duration(budgets[tier]), Weight: 1, Client: clients[tier],
			Sink: &plan.SinkJob{Source: "trading-db", Table: st.name, Topic: "trading." + st.name, Datacenter: "dc1",
				MySQL: my, Postgres: schema.PostgresSink{DSN: schema.Secret{Env: dsnEnv}}, Target: target,
				Columns: st.columns, Snapshot: st.snapshot},
		})
	}
	jobs[0] = src
	p := &plan.Plan{
		Version:     plan.Version,
		Datacenters: map[string]schema.Datacenter{"dc1": {Kafka: schema.Kafka{Brokers: []string{w.kafka.Addr()}}}},
		Shards:      map[string]schema.Shard{"default": {Tiers: []int{1, 2, 3, 4}}},
		Tiers:       map[string]plan.Duration{"1": plan.Duration(budgets[1]), "2": plan.Duration(budgets[2]), "3": plan.Duration(budgets[3]), "4": plan.Duration(budgets[4])},
		Metrics:     plan.Metrics{Interval: plan.Duration(10 * time.Second)},
		Jobs:        jobs,
	}
	if _, err := p.Encode(); err != nil { // sorts the jobs
		w.t.Fatal(err)
	}
	return p
}

func testLogger() *slog.Logger {
	if os.Getenv("FERRY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// run starts the plan's jobs in an executor of this process and waits
// until every job runs.
func (w *world) run(p *plan.Plan) {
	w.t.Helper()
	w.plan = p
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	w.ex = executor.New(
		executor.WithKind(plan.KindCDC, cdc.New),
		executor.WithKind(plan.KindSink, New),
		executor.WithLogger(testLogger()),
		executor.WithBackoff(100*time.Millisecond, time.Second),
	)
	w.ex.Apply(ctx, p)
	w.waitRunning(p.Jobs...)
}

func (w *world) waitRunning(jobs ...plan.Job) {
	w.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, j := range jobs {
		for {
			m := w.ex.Registry().Lookup(j.ID)
			if m != nil && m.Status().State == metrics.StateRunning {
				break
			}
			if time.Now().After(deadline) {
				w.t.Fatalf("%s not running after 60s: %+v", j.ID, m.Status())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// pgQuery runs a query on the target whose columns are all text (cast
// them) and returns its rows, NULL as "NULL".
func (w *world) pgQuery(query string, args ...any) [][]string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, w.pg.DSN())
	if err != nil {
		w.t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "SET TIME ZONE 'UTC'"); err != nil {
		w.t.Fatal(err)
	}
	rows, err := c.Query(ctx, query, args...)
	if err != nil {
		w.t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals := make([]*string, len(rows.FieldDescriptions()))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			w.t.Fatalf("%s: %v", query, err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = "NULL"
			if v != nil {
				row[i] = *v
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		w.t.Fatalf("%s: %v", query, err)
	}
	return out
}

// waitFor polls cond until it holds, failing the test after the timeout
// with what last returned.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s; last: %s", what, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
