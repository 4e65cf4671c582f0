package cdc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
)

// BenchmarkCDC measures, in one run: row events/s from the binlog into
// Kafka (goal >= 50,000/s), a raw go-mysql decode loop over the same
// binlog (the ceiling), and the initial load's rows/s next to mariadb-dump
// of the same table into a file (goal >= 1.0x), with the CPU time per row
// that each side and the server spent; then the load again beside a Tier 1
// table under writes, and that table's latency. The jobs have the client
// settings the compiler gives their tier. FERRY_CDC_BENCH_ROWS sets the row count
// (default 1,000,000, the table; fewer rows weigh the job's start
// and first chunks more).
func BenchmarkCDC(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("FERRY_CDC_BENCH_ROWS")); err == nil && v > 0 {
		n = v
	}
	w := newWorld(b)
	if err := w.db.Exec("CREATE TABLE trading.bench (id INT PRIMARY KEY, note VARCHAR(40), qty INT, price DECIMAL(10,2), at DATETIME(6))"); err != nil {
		b.Fatal(err)
	}
	pj := w.job(table("trading.bench", "no_data", 2))
	pj.Tier, pj.Budget = 2, plan.Duration(10*time.Second)
	pj.Client = compiler.ClientSettings(2, pj.Budget.D())
	r := w.start(pj)
	r.stop(b)
	start, err := binlog.MasterStatus(context.Background(), binlog.Config{Addr: w.db.Addr(), User: devenv.FerryUser, Password: devenv.FerryPassword}, "mariadb")
	if err != nil {
		b.Fatal(err)
	}
	for lo := 0; lo < n; lo += 50_000 {
		hi := min(lo+50_000, n)
		if err := w.db.Exec(fmt.Sprintf("INSERT INTO trading.bench SELECT seq, CONCAT('row ', seq), seq %% 100, seq / 7, '2024-01-02 03:04:05.123456' FROM trading.seq_%d_to_%d", lo+1, hi)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()

	// The ceiling: go-mysql decoding the same events, nothing else.
	t0 := time.Now()
	rawDecode(b, w.db, start, n)
	raw := float64(n) / time.Since(t0).Seconds()

	// Streaming: the job resumes at its checkpoint, before the rows.
	t0 = time.Now()
	r = w.start(pj)
	w.waitCaughtUpJob(pj.ID, nil)
	stream := float64(n) / time.Since(t0).Seconds()
	r.stop(b)
	w.dropTopics(pj)

	// Initial load of the same table by a second job.
	snap := loadJob(pj, "snap", 2, table("trading.bench", "initial", 2))
	cpu := newCPUMeter(b, w.db)
	t0 = time.Now()
	r = w.start(snap)
	waitSnapshot(b, r, "trading.bench", int64(n))
	loadJobRate := float64(n) / time.Since(t0).Seconds()
	// The load's own rate, from its first chunk to its last, as the job
	// reports it: without the job's start (connections, checks, topics).
	load := r.m.Status().Parts["trading.bench"].RowsPerSec
	loadFerry, loadServer := cpu.lap()
	r.stop(b)
	w.dropTopics(snap)

	cpu.lap()
	t0 = time.Now()
	dump := exec.Command("mariadb-dump", "--no-defaults", "--socket="+w.db.Socket, "-uroot", "--single-transaction",
		"--result-file="+filepath.Join(b.TempDir(), "bench.sql"), "trading", "bench")
	if out, err := dump.CombinedOutput(); err != nil {
		b.Fatalf("mariadb-dump: %v: %.200s", err, out)
	}
	dumpRate := float64(n) / time.Since(t0).Seconds()
	_, dumpServer := cpu.lap()
	dumpCPU := dump.ProcessState.UserTime() + dump.ProcessState.SystemTime()

	// The load again, by a job that also captures a Tier 1 table under
	// writes: the load is paced so that table keeps its budget.
	loadRows(b, w.db, "trading.live", 1000)
	paced := loadJob(pj, "paced", 1, table("trading.bench", "initial", 2), table("trading.live", "no_data", 1))
	r = w.start(paced)
	t0 = time.Now()
	writer := startWriter(b, w.db, "trading.live", 1000)
	waitSnapshot(b, r, "trading.bench", int64(n))
	pacedLoad := float64(n) / time.Since(t0).Seconds()
	writes := float64(writer.finish()) / time.Since(t0).Seconds()
	w.waitCaughtUpJob(paced.ID, nil)
	live := r.m.Status().Parts["trading.live"].Latency
	r.stop(b)
	b.StopTimer()

	b.ReportMetric(stream, "stream_events/s")
	b.ReportMetric(raw, "raw_decode_events/s")
	b.ReportMetric(load, "snapshot_rows/s")
	b.ReportMetric(dumpRate, "dump_rows/s")
	fmt.Printf("CDC %d rows: streaming %.0f events/s (goal 50000: %.2fx), raw go-mysql decode %.0f/s (streaming at %.2fx of it); "+
		"initial load %.0f rows/s (%.0f with the job's start), mariadb-dump %.0f rows/s (%.2fx, goal >= 1.0x)\n",
		n, stream, stream/50000, raw, stream/raw, load, loadJobRate, dumpRate, load/dumpRate)
	perRow := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(n) / 1000 }
	fmt.Printf("CDC CPU per row: initial load %.2f µs in ferry (with the in-process Kafka) + %.2f µs in mariadbd; "+
		"mariadb-dump %.2f µs + %.2f µs in mariadbd\n",
		perRow(loadFerry), perRow(loadServer), perRow(dumpCPU), perRow(dumpServer))
	fmt.Printf("CDC initial load beside a Tier 1 table under %.0f writes/s: load %.0f rows/s; the Tier 1 table's latency p50 %.1f ms, p99 %.1f ms, max %.1f ms (budget 300 ms)\n",
		writes, pacedLoad, live.P50, live.P99, live.Max)
}

// loadJob is a copy of the job pj, with its own ID and topic prefix, that
// captures tables with the client settings of tier.
func loadJob(pj plan.Job, prefix string, tier int, tables ...plan.CDCTable) plan.Job {
	j := pj
	j.ID = "cdc:bench-" + prefix
	j.Tier, j.Budget = tier, plan.Duration(compiler.DefaultBudgets[tier])
	j.Client = compiler.ClientSettings(tier, j.Budget.D())
	j.CDC = &plan.CDCJob{}
	*j.CDC = *pj.CDC
	j.CDC.TopicPrefix = prefix
	j.CDC.Snapshot.ChunkSize, j.CDC.Snapshot.Parallelism = 8192, 4
	j.CDC.Tables = nil
	for _, t := range tables {
		t.Topic = prefix + "." + t.Name
		j.CDC.Tables = append(j.CDC.Tables, t)
	}
	return j
}

// dropTopics deletes a job's topics once its phase is measured. The
// in-process broker keeps every record in memory: a later phase would
// otherwise pay for the earlier ones' data in page faults and GC.
func (w *world) dropTopics(pj plan.Job) {
	opts, _ := kafkaconn.Options(w.plan.Datacenters["dc1"])
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		w.t.Fatal(err)
	}
	defer cl.Close()
	var topics []string
	for _, t := range pj.CDC.Tables {
		topics = append(topics, t.Topic)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).DeleteTopics(ctx, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		w.t.Fatal(err)
	}
	runtime.GC()
}

// cpuMeter reads this process's and the database server's CPU time.
type cpuMeter struct {
	b            *testing.B
	db           *devenv.MariaDB
	self, server time.Duration
}

func newCPUMeter(b *testing.B, db *devenv.MariaDB) *cpuMeter {
	m := &cpuMeter{b: b, db: db}
	m.lap()
	return m
}

// lap returns the CPU time spent since the last lap.
func (m *cpuMeter) lap() (self, server time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		m.b.Fatal(err)
	}
	s := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	d, err := m.db.CPUTime()
	if err != nil {
		m.b.Fatal(err)
	}
	self, server = s-m.self, d-m.server
	m.self, m.server = s, d
	return self, server
}

func rawDecode(b *testing.B, db *devenv.MariaDB, pos binlog.Position, n int) {
	port, _ := strconv.Atoi(db.Addr()[len("127.0.0.1:"):])
	s := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: 9999, Flavor: "mariadb", Host: "127.0.0.1", Port: uint16(port),
		User: devenv.FerryUser, Password: devenv.FerryPassword, Logger: quietLogger(),
	})
	defer s.Close()
	st, err := s.StartSync(mysql.Position{Name: pos.File, Pos: uint32(pos.Pos)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rows := 0
	for rows < n {
		ev, err := st.GetEvent(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if re, ok := ev.Event.(*replication.RowsEvent); ok && string(re.Table.Table) == "bench" {
			rows += len(re.Rows)
		}
	}
}
