package sink_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/runtime/cdc"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/sink"
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

func newWorld(t testing.TB) *world { return newWorldWith(t, devenv.MariaDBOptions{}) }

// newWorldWith starts the world with a MariaDB of those options.
func newWorldWith(t testing.TB, opts devenv.MariaDBOptions) *world {
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
		w.db, err = devenv.StartMariaDB(opts)
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
	1: {BatchMaxBytes: 256 << 10, FetchMaxWait: plan.Duration(10 * time.Millisecond), FetchMinBytes: 1, Compression: "lz4", CommitInterval: plan.Duration(10 * time.Millisecond)},
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
func (w *world) run(p *plan.Plan) { w.runShard(p, "") }

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
	c := w.pgConn(ctx)
	defer c.Close(ctx)
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

// runShard starts the jobs of one shard of the plan ("": all) in an
// executor of this process and waits until they run.
func (w *world) runShard(p *plan.Plan, shard string) {
	w.t.Helper()
	w.start(p, shard)
	var jobs []plan.Job
	for _, j := range p.Jobs {
		if shard == "" || j.Shard == shard {
			jobs = append(jobs, j)
		}
	}
	w.waitRunning(jobs...)
}

// start starts the plan's jobs (of shard, or all) in an executor of this
// process.
func (w *world) start(p *plan.Plan, shard string) {
	w.plan = p
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	w.ex = executor.New(
		executor.WithKind(plan.KindCDC, cdc.New),
		executor.WithKind(plan.KindSink, sink.NewKind()),
		executor.WithShard(shard),
		executor.WithLogger(testLogger()),
		executor.WithBackoff(100*time.Millisecond, time.Second),
	)
	w.ex.Apply(ctx, p)
}

// planFile writes the plan for `ferry ... --plan`.
func (w *world) planFile(p *plan.Plan) string {
	w.t.Helper()
	b, err := p.Encode()
	if err != nil {
		w.t.Fatal(err)
	}
	f := filepath.Join(w.t.TempDir(), "plan.json")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		w.t.Fatal(err)
	}
	return f
}

// ferryCmd is the ferry binary with the test's secrets in its environment.
func (w *world) ferryCmd(args ...string) *exec.Cmd {
	cmd, err := devenv.FerryCommand(args...)
	if err != nil {
		w.t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), passEnv+"="+devenv.FerryPassword, dsnEnv+"="+w.pg.DSN())
	return cmd
}

// ferry runs the ferry binary to its end and returns its output and exit
// code.
func (w *world) ferry(args ...string) (string, int) {
	w.t.Helper()
	cmd := w.ferryCmd(args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		w.t.Fatal(err)
	}
	return string(out), 0
}

// writer changes rows of trading.orders at random until stopped: updates,
// deletes, inserts of new and of deleted keys, several rows per
// transaction at times.
type writer struct {
	stop chan struct{}
	done chan int
}

func (w *world) startWriter(keys int, perSecond int) *writer {
	wr := &writer{stop: make(chan struct{}), done: make(chan int, 1)}
	go func() {
		c, err := w.db.Root()
		if err != nil {
			wr.done <- 0
			return
		}
		defer c.Close()
		rng := rand.New(rand.NewPCG(1, 2))
		n := 0
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for {
			select {
			case <-wr.stop:
				wr.done <- n
				return
			case <-tick.C:
			}
			id := rng.IntN(keys) + 1
			var stmt string
			switch rng.IntN(10) {
			case 0, 1:
				stmt = fmt.Sprintf("DELETE FROM trading.orders WHERE id = %d", id)
			case 2, 3:
				stmt = fmt.Sprintf("REPLACE INTO trading.orders VALUES (%d, 'w%d', %d, 'replaced')", id, n, n)
			case 4:
				stmt = fmt.Sprintf("UPDATE trading.orders SET qty = qty + 1 WHERE id BETWEEN %d AND %d", id, id+5)
			default:
				stmt = fmt.Sprintf("UPDATE trading.orders SET qty = %d, note = 'w%d' WHERE id = %d", n, n, id)
			}
			if _, err := c.Execute(stmt); err == nil {
				n++
			}
		}
	}()
	return wr
}

func (wr *writer) finish() int {
	close(wr.stop)
	return <-wr.done
}

// ordersTable creates trading.orders with n rows.
func (w *world) ordersTable(n int) {
	w.t.Helper()
	w.mysql("CREATE TABLE trading.orders (id INT PRIMARY KEY, account VARCHAR(20) NOT NULL, qty INT, note VARCHAR(100))")
	if n > 0 {
		w.mysql(fmt.Sprintf("INSERT INTO trading.orders SELECT seq, CONCAT('acct', seq), seq, 'seeded' FROM trading.seq_1_to_%d", n))
	}
}

// admin is an admin client of the world's cluster, closed with the test.
func (w *world) admin() *kadm.Client {
	w.t.Helper()
	opts, err := kafkaconn.Options(schema.Datacenter{Kafka: schema.Kafka{Brokers: []string{w.kafka.Addr()}}})
	if err != nil {
		w.t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// topicEnd is the sum of a topic's end offsets (read_committed).
func (w *world) topicEnd(topic string) int64 {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := w.admin().ListCommittedOffsets(ctx, topic)
	if err != nil {
		return 0
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// pgCount counts a target table's rows; -1 while it does not exist.
func (w *world) pgCount(table string) int64 {
	n, err := strconv.ParseInt(w.pgScalar("SELECT count(*)::text FROM "+table), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// pgScalar runs a query of one text value on the target; "" when it fails
// (a table not made yet).
func (w *world) pgScalar(query string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := w.pgConn(ctx)
	defer c.Close(ctx)
	var v string
	if err := c.QueryRow(ctx, query).Scan(&v); err != nil {
		return ""
	}
	return v
}

// pgConn connects to the target database, in UTC.
func (w *world) pgConn(ctx context.Context) *pgx.Conn {
	w.t.Helper()
	c, err := pgx.Connect(ctx, w.pg.DSN())
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "SET TIME ZONE 'UTC'"); err != nil {
		w.t.Fatal(err)
	}
	return c
}

// paced runs statements on the source at rate per second for d, spread
// over several connections, and returns how many ran.
func (w *world) paced(rate int, d time.Duration, conns int, stmt func(n int) string) int {
	w.t.Helper()
	var mu sync.Mutex
	sent := 0
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for g := 0; g < conns; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := w.db.Root()
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			tick := time.NewTicker(time.Second * time.Duration(conns) / time.Duration(rate))
			defer tick.Stop()
			for deadline := time.Now().Add(d); time.Now().Before(deadline); {
				<-tick.C
				mu.Lock()
				sent++
				n := sent
				mu.Unlock()
				if _, err := c.Execute(stmt(n)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		w.t.Fatal(err)
	}
	return sent
}
