// Package sink is the executor's "sink" job kind: it writes one CDC
// table's Debezium events from its topic into a PostgreSQL table.
//
// Events are applied in PostgreSQL transactions, each holding a batch of
// events (up to the tier's commit interval or MaxBatch rows) together with
// the Kafka offsets they bring the job to, in the target's ferry_offsets
// table. On start, and whenever the consumer group hands this process a
// partition, the job reads the partition's offset back from PostgreSQL and
// consumes from there: nothing is committed to Kafka, so a crash never
// loses an event nor applies one twice. The offset update is conditional on
// the offset the process read, which fences a process that lost its
// partition without noticing. The jobs of a process share their Kafka
// consumers (consumers.go) and PostgreSQL pools (targets.go).
//
// Each row also carries the version (binlog position) of the change that
// wrote it, and every key's newest version, deletes included, is kept in a
// versions table: an older change never overwrites a newer one. That makes
// the stream and a bulk load (ferry load) safe to overlap.
package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/headers"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// MaxBatch is the most events one PostgreSQL transaction applies; a batch
// is committed at the tier's commit interval or when it reaches MaxBatch.
const MaxBatch = 5000

// Group session settings, as for mirrors: a dead process's partitions move
// to the others of its shard within sessionTimeout.
const (
	sessionTimeout    = 6 * time.Second
	heartbeatInterval = 500 * time.Millisecond
)

// errFenced means another process moved a partition's offset: this one
// lost the partition.
var errFenced = errors.New("another process applied this partition meanwhile (it was reassigned); restarting from the stored offsets")

type job struct {
	env  *executor.Env
	spec plan.Job
	s    *plan.SinkJob
	log  *slog.Logger
	// kopts are the client options of the events' datacenter, where dead
	// letters go too.
	kopts []kgo.Opt

	targets   *targets
	consumers *consumers
	pg        querier // the pool of the target and tier, shared with the process's other sinks

	mu    sync.Mutex
	owned map[int32]int64 // partition -> stored next offset (-1: none yet)
}

// querier is a PostgreSQL connection or a pool of them: a job takes a
// pooled connection for each statement or transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

// newJob builds a sink job from its plan entry.
func newJob(env *executor.Env, spec plan.Job, ts *targets, cs *consumers) (executor.Runner, error) {
	if spec.Sink == nil {
		return nil, fmt.Errorf("%s: plan entry has no sink block", spec.ID)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &job{env: env, spec: spec, s: spec.Sink, log: log, targets: ts, consumers: cs}, nil
}

// Run applies the table's events until ctx ends.
func (j *job) Run(ctx context.Context) error {
	m := j.env.Metrics
	m.SetState(metrics.StateStarting, nil)
	pool, release, err := j.targets.open(j.spec.ID, j.s, j.spec.Tier)
	if err != nil {
		return executor.Waiting(err) // its DSN: the job waits for it, as for an unreachable target
	}
	defer release()
	j.pg = pool
	t, err := j.prepare(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return executor.Waiting(err)
	}
	opts, err := j.env.Kafka(j.s.Datacenter)
	if err != nil {
		return fmt.Errorf("%s: %w", j.spec.ID, err)
	}
	j.kopts = opts
	j.owned = map[int32]int64{}
	f := &feed{
		topic: j.s.Topic, log: j.log,
		assigned: func(ctx context.Context, parts map[int32]kgo.Offset) error { return j.assigned(ctx, t, parts) },
		released: j.release,
	}
	leave, err := j.consumers.join(j.env, j.spec, f)
	if err != nil {
		return fmt.Errorf("%s: %w", j.spec.ID, err)
	}
	defer leave()
	m.SetState(metrics.StateRunning, nil)
	a := &applier{j: j, t: t, m: m}
	defer func() {
		if a.dl != nil {
			a.dl.Close()
		}
	}()
	err = a.loop(ctx, f)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// prepare connects to both databases, reads the source table's shape and
// creates the target tables where missing.
func (j *job) prepare(ctx context.Context) (*Table, error) {
	my, err := ConnectSource(ctx, j.spec.ID, j.s)
	if err != nil {
		return nil, err
	}
	t, err := LoadTable(my, j.s)
	my.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", j.spec.ID, err)
	}
	if err := t.Ensure(ctx, j.pg); err != nil {
		return nil, fmt.Errorf("%s: %w", j.spec.ID, err)
	}
	return t, nil
}

// assigned reads the stored offsets of the partitions the group gave this
// process and starts each there, or at the start of the topic when none is
// stored.
func (j *job) assigned(ctx context.Context, t *Table, parts map[int32]kgo.Offset) error {
	stored := map[int32]int64{}
	for p := range parts {
		next, err := ReadOffset(ctx, j.pg, t, j.spec.ID, j.s.Topic, p)
		if err != nil {
			return err
		}
		stored[p] = next
		parts[p] = kgo.NewOffset().AtStart()
		if next >= 0 {
			parts[p] = kgo.NewOffset().At(next)
		}
	}
	j.mu.Lock()
	for p, next := range stored {
		j.owned[p] = next
	}
	j.mu.Unlock()
	j.log.Info("partitions assigned", "partitions", len(stored))
	return nil
}

// ReadOffset returns a partition's stored next offset, making its row (-1:
// from the start of the topic) when there is none.
func ReadOffset(ctx context.Context, pg querier, t *Table, jobID, topic string, p int32) (int64, error) {
	if _, err := pg.Exec(ctx, "INSERT INTO "+t.OffsetsIdent()+" (job, topic, partition, next_offset) VALUES ($1, $2, $3, -1) ON CONFLICT DO NOTHING", jobID, topic, p); err != nil {
		return 0, fmt.Errorf("%s: PostgreSQL: offsets of partition %d: %w", jobID, p, err)
	}
	var next int64
	if err := pg.QueryRow(ctx, "SELECT next_offset FROM "+t.OffsetsIdent()+" WHERE job = $1 AND topic = $2 AND partition = $3", jobID, topic, p).Scan(&next); err != nil {
		return 0, fmt.Errorf("%s: PostgreSQL: offsets of partition %d: %w", jobID, p, err)
	}
	return next, nil
}

func (j *job) release(lost []int32) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, p := range lost {
		delete(j.owned, p)
	}
}

// stored returns the offset the process read or last wrote for p, and
// whether it still owns p.
func (j *job) stored(p int32) (int64, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	n, ok := j.owned[p]
	return n, ok
}

func (j *job) setStored(p int32, next int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.owned[p]; ok {
		j.owned[p] = next
	}
}

// applier is one run's batching loop.
type applier struct {
	j *job
	t *Table
	m *metrics.Job

	batch   []Row
	recs    []*kgo.Record // the event of each row of the batch
	dead    []letter      // the batch's events that go to ferry.dlq
	dl      *kgo.Client   // writes them, made with the first
	byKey   map[string]int
	obs     []observation
	counts  map[string]int64
	next    map[int32]int64   // partition -> offset after the batch
	newest  map[int32]Version // partition -> newest version in the batch
	started time.Time
}

type observation struct {
	src   time.Time
	bytes int
}

func (a *applier) reset() {
	a.batch, a.recs, a.dead = a.batch[:0], a.recs[:0], a.dead[:0]
	a.byKey = map[string]int{}
	a.obs = a.obs[:0]
	a.counts = map[string]int64{}
	a.next = map[int32]int64{}
	a.newest = map[int32]Version{}
}

func (a *applier) loop(ctx context.Context, f *feed) error {
	interval := a.j.spec.Client.CommitInterval.D()
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	a.reset()
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if len(a.next) > 0 {
			pctx, cancel = context.WithDeadline(ctx, a.started.Add(interval))
		}
		fetched, err := f.poll(pctx, MaxBatch-len(a.batch))
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", a.j.spec.ID, err)
		}
		var lag int64
		for _, fp := range fetched {
			for _, r := range fp.Records {
				if err := a.add(r); err != nil {
					return err
				}
			}
			if n := len(fp.Records); n > 0 {
				lag += max(fp.LastStableOffset-fp.Records[n-1].Offset-1, 0)
			}
		}
		a.m.SetLag(a.t.Source, lag)
		if len(a.next) > 0 && (len(a.batch) >= MaxBatch || time.Since(a.started) >= interval) {
			if err := a.commit(ctx); err != nil {
				return err
			}
		}
	}
}

// envelope is the part of a Debezium event the sink reads.
type envelope struct {
	Before map[string]json.RawMessage `json:"before"`
	After  map[string]json.RawMessage `json:"after"`
	Source struct {
		TsMs int64  `json:"ts_ms"`
		TsUs int64  `json:"ts_us"`
		File string `json:"file"`
		Pos  uint64 `json:"pos"`
		Row  int    `json:"row"`
	} `json:"source"`
	Op string `json:"op"`
}

// add puts one record into the batch: a change replaces an earlier one of
// the same key (the later is newer); tombstones and transaction markers
// only move the offset.
func (a *applier) add(r *kgo.Record) error {
	if _, ok := a.j.stored(r.Partition); !ok {
		return nil // a partition taken away while its records were on the way
	}
	if len(a.next) == 0 {
		a.started = time.Now()
	}
	a.next[r.Partition] = r.Offset + 1
	if r.Attrs.IsControl() || r.Value == nil {
		return nil
	}
	row, ev, err := a.t.decode(r.Value)
	var restart restartError
	switch {
	case errors.As(err, &restart):
		return fmt.Errorf("%s: record %s/%d@%d: %w", a.j.spec.ID, r.Topic, r.Partition, r.Offset, err)
	case err != nil:
		a.dead = append(a.dead, letter{rec: r, class: "conversion", err: err})
		return nil
	}
	key := string(r.Key)
	if i, ok := a.byKey[key]; ok {
		if a.batch[i].Version.Compare(row.Version) <= 0 {
			a.batch[i], a.recs[i] = row, r
		}
		a.counts[metrics.Filtered]++
	} else {
		a.byKey[key] = len(a.batch)
		a.batch = append(a.batch, row)
		a.recs = append(a.recs, r)
	}
	if v := a.newest[r.Partition]; v.Compare(row.Version) < 0 {
		a.newest[r.Partition] = row.Version
	}
	switch ev.Op {
	case "c":
		a.counts[metrics.Creates]++
	case "u":
		a.counts[metrics.Updates]++
	case "d":
		a.counts[metrics.Deletes]++
	case "r":
		a.counts[metrics.SnapshotRead]++
		return nil // a snapshot row is counted, not measured against the budget
	}
	src := time.UnixMicro(ev.Source.TsUs)
	if ev.Source.TsUs == 0 {
		src = time.UnixMilli(ev.Source.TsMs)
	}
	for _, h := range r.Headers {
		if h.Key == headers.SourceTime { // finer than source.ts_us on MariaDB
			if us, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				src = time.UnixMicro(us)
			}
		}
	}
	a.obs = append(a.obs, observation{src: src, bytes: len(r.Key) + len(r.Value)})
	return nil
}

// decode turns an event into a row: the after image for c, u and r, the
// before image's key for d.
func (t *Table) decode(value []byte) (Row, *envelope, error) {
	var ev envelope
	if err := json.Unmarshal(value, &ev); err != nil {
		return Row{}, nil, fmt.Errorf("not a Debezium event: %v", err)
	}
	img := ev.After
	row := Row{Values: make([]*string, len(t.Columns))}
	switch ev.Op {
	case "c", "u", "r":
	case "d":
		img, row.Deleted = ev.Before, true
	default:
		return Row{}, nil, fmt.Errorf("unknown op %q", ev.Op)
	}
	if img == nil {
		return Row{}, nil, fmt.Errorf("op %q without its row image", ev.Op)
	}
	for name := range img {
		if _, ok := t.index[name]; !ok {
			return Row{}, nil, restartError{fmt.Sprintf("column %s is not in the target yet (added at the source); the job restarts to add it", name)}
		}
	}
	for i := range t.Columns {
		if row.Deleted && !t.Columns[i].Key {
			continue
		}
		v, err := t.Columns[i].Text(img[t.Columns[i].Source])
		if err != nil {
			return Row{}, nil, err
		}
		row.Values[i] = v
	}
	if ev.Op != "r" {
		var err error
		if row.Version, err = EventVersion(ev.Source.File, ev.Source.Pos, ev.Source.Row); err != nil {
			return Row{}, nil, err
		}
	}
	return row, &ev, nil
}

// commit applies the batch and moves the offsets in one PostgreSQL
// transaction, then reports the batch's figures. A batch PostgreSQL
// refuses for a row's sake is applied again a row at a time, and the rows
// it refuses are dead-lettered (deadletter.go).
func (a *applier) commit(ctx context.Context) error {
	err := a.tryCommit(ctx, false)
	if refusedRow(err) {
		err = a.tryCommit(ctx, true)
	}
	return err
}

func (a *applier) tryCommit(ctx context.Context, alone bool) error {
	tx, err := a.j.pg.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: PostgreSQL: %w", a.j.spec.ID, err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit a no-op
	refused := len(a.dead)
	var won int
	if alone {
		won, err = a.applyAlone(ctx, tx)
	} else {
		won, err = a.t.Apply(ctx, tx, a.batch)
	}
	refused = len(a.dead) - refused
	if err != nil {
		return fmt.Errorf("%s: %w", a.j.spec.ID, err)
	}
	b := &pgx.Batch{}
	for p, next := range a.next {
		prev, ok := a.j.stored(p)
		if !ok {
			return fmt.Errorf("%s: partition %d: %w", a.j.spec.ID, p, errFenced)
		}
		var version *string
		if v, ok := a.newest[p]; ok && v != (Version{}) {
			s := v.String()
			version = &s
		}
		b.Queue("UPDATE "+a.t.OffsetsIdent()+" SET next_offset = $1, version = COALESCE($2::numeric, version), applied_at = now() WHERE job = $3 AND topic = $4 AND partition = $5 AND next_offset = $6",
			next, version, a.j.spec.ID, a.j.s.Topic, p, prev)
	}
	br := tx.SendBatch(ctx, b)
	for range a.next {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return fmt.Errorf("%s: PostgreSQL: store offsets: %w", a.j.spec.ID, err)
		}
		if tag.RowsAffected() != 1 {
			br.Close()
			return fmt.Errorf("%s: %w", a.j.spec.ID, errFenced)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("%s: PostgreSQL: store offsets: %w", a.j.spec.ID, err)
	}
	if err := a.sendLetters(ctx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: PostgreSQL: commit: %w", a.j.spec.ID, err)
	}
	now := time.Now()
	for p, next := range a.next {
		a.j.setStored(p, next)
	}
	budget := a.j.spec.Budget.D()
	for _, o := range a.obs {
		a.m.ObserveBudget(a.t.Source, now.Sub(o.src), o.bytes, budget)
	}
	a.counts[metrics.Filtered] += int64(len(a.batch) - won - refused)
	for name, n := range a.counts {
		if n > 0 {
			a.m.Count(a.t.Source, name, n)
		}
	}
	a.reset()
	return nil
}
