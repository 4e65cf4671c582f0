package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/cdc/event"
	"github.com/ferry-pipelines/ferry/runtime/cdcstate"
	"github.com/ferry-pipelines/ferry/runtime/checkpoint"
	"github.com/ferry-pipelines/ferry/runtime/dlq"
	"github.com/ferry-pipelines/ferry/runtime/headers"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
	"github.com/ferry-pipelines/ferry/schema"
)

// Names of ferry's own tables in the heartbeat database.
const (
	heartbeatTable = "ferry_heartbeat"
	watermarkTable = "ferry_watermark"
)

// errCrash, as the cause of the job's context, stops it without
// committing, as kill -9 would (tests).
var errCrash = errors.New("cdc: simulated crash")

// runner is one run of the job: it owns the state from start to stop.
type runner struct {
	src        *source // the job it runs for: updates of its plan entry arrive there
	job        plan.Job
	cfg        binlog.Config
	srv        binlog.Server
	cl         *kgo.Client
	opts       []kgo.Opt
	limits     map[string]int32  // each CDC topic's max.message.bytes
	poison     map[string]poison // records too large for their topic (poison.go)
	alone      map[string]bool   // topics whose records are written one at a time
	aloneIDs   []string          // poisoned records written alone in the open transaction
	hbInterval time.Duration
	hbDB       string
	log        *slog.Logger
	m          *metrics.Job

	st     *cdcstate.State // everything processed (committed or in the open Kafka transaction)
	tables map[string]*tableRun

	readerCh  chan readMsg
	reading   bool
	readerBO  *backoff
	reconnect time.Time
	waiting   bool

	// The open Kafka transaction.
	inTxn      bool
	txnStart   time.Time
	txnBytes   int
	dirty      bool // position moved since the last commit
	lastCommit time.Time
	obs        []observation
	counts     map[string]map[string]int64
	// inflight counts records whose promise has not run: kgo calls the
	// promise of a record that fails before it is buffered (one too large,
	// say) after Flush may already have returned, so a commit waits for
	// every promise, not only for Flush.
	inflight sync.WaitGroup
	prodMu   sync.Mutex
	prodErr  error
	prodRec  *kgo.Record              // the record prodErr is about
	promise  func(*kgo.Record, error) // r.produced, made once, not per record
	// landed: a commit of the current producer was read back (see
	// kafkaconn.Committed); false again for each new producer.
	landed bool

	hbLast  time.Time // the newest heartbeat value read from the binlog
	readLag time.Duration

	snap *snapshotter

	bgCancel context.CancelFunc
	bg       sync.WaitGroup
	// pctx is the context records are produced under: it outlives a stop
	// by 30 s, so a clean stop commits what is buffered, and a stop while
	// Kafka is away still ends.
	pctx context.Context
}

type tableRun struct {
	p  plan.CDCTable
	st *cdcstate.TableState
	// unreadable: the table's last rows event could not be read, which
	// its status shows until one can.
	unreadable bool
}

// observation is a change event awaiting its commit, when its latency is
// recorded against its table's budget.
type observation struct {
	table string
	src   time.Time
	bytes int
}

type readMsg struct {
	txn *binlog.Txn
	err error
}

// init settles the start position and each table's state from the
// checkpoint (nil on a first start).
func (r *runner) init(ctx context.Context, st *cdcstate.State) error {
	now := time.Now().UTC()
	r.tables = map[string]*tableRun{}
	r.counts = map[string]map[string]int64{}
	r.readerBO = newBackoff()
	if st != nil {
		// The reader checks again on every connection: the address may
		// move to another server while the job runs.
		ok := true
		var err error
		if !st.Origin.Same(r.srv.Origin) {
			if err := binlog.CheckGTID(ctx, r.cfg, r.srv.Flavor, st.Position, r.srv.Origin); err != nil {
				return fmt.Errorf("%s: %w", r.job.ID, err)
			}
			r.log.Warn("checkpoint is of another server (a failover): resuming from its GTID set", "checkpoint", st.Origin.String(), "server", r.srv.Origin.String(), "gtid", st.GTID)
		} else if ok, err = binlog.HasFile(ctx, r.cfg, st.File); err != nil {
			return fmt.Errorf("%s: %w", r.job.ID, err)
		}
		if !ok {
			for _, t := range r.job.CDC.Tables {
				if t.Snapshot != schema.SnapshotWhenNeeded {
					return fmt.Errorf("%s: binlog file %s of the checkpoint is no longer on the server (purged), so changes were lost; keep binlogs longer (binlog_expire_logs_seconds) and reload the tables: set snapshot: \"when_needed\" on %s to snapshot it again", r.job.ID, st.File, t.Name)
				}
			}
			r.log.Warn("checkpoint's binlog file is gone; when_needed tables are snapshotted again", "file", st.File)
			st = nil
		}
	}
	fresh := st == nil
	if fresh {
		pos, err := binlog.MasterStatus(ctx, r.cfg, r.srv.Flavor)
		if err != nil {
			return fmt.Errorf("%s: %w", r.job.ID, err)
		}
		pos.Origin = r.srv.Origin
		start := pos
		for _, t := range r.job.CDC.Tables {
			if t.Snapshot == schema.SnapshotNever {
				// Debezium's "never": the table's whole binlog history.
				if start, err = binlog.FirstPosition(ctx, r.cfg, r.srv.Flavor); err != nil {
					return fmt.Errorf("%s: %w", r.job.ID, err)
				}
				start.Origin = r.srv.Origin
				break
			}
		}
		st = &cdcstate.State{Position: start, Tables: map[string]*cdcstate.TableState{}}
		for _, t := range r.job.CDC.Tables {
			ts := &cdcstate.TableState{Mode: t.Snapshot, Since: pos}
			switch t.Snapshot {
			case schema.SnapshotNever:
				ts.Since = start
			case schema.SnapshotInitial, schema.SnapshotWhenNeeded, "":
				ts.Snapshot = &cdcstate.SnapState{Started: now}
			}
			st.Tables[t.Name] = ts
		}
		r.dirty = true
	}
	r.st = st
	// Tables of the plan that the checkpoint does not know were added while
	// the job was down: as add_table. Tables it knows but the plan dropped
	// are forgotten.
	planned := map[string]bool{}
	for _, t := range r.job.CDC.Tables {
		planned[t.Name] = true
		ts := st.Tables[t.Name]
		if ts == nil {
			ts = r.newTableState(t, now)
			st.Tables[t.Name] = ts
			r.dirty = true
		}
		r.tables[t.Name] = &tableRun{p: t, st: ts}
	}
	for name := range st.Tables {
		if !planned[name] {
			delete(st.Tables, name)
			r.dirty = true
		}
	}
	r.snap = newSnapshotter(r, loadSettings{
		cfg: r.cfg, flavor: r.srv.Flavor, jobID: r.job.ID, topicPrefix: r.job.CDC.TopicPrefix, hbDB: r.hbDB,
		chunkSize: r.job.CDC.Snapshot.ChunkSize, parallelism: r.job.CDC.Snapshot.Parallelism,
		m: r.m, log: r.log, bg: &r.bg,
	})
	if r.dirty {
		// A first start (or tables added while down) is saved before
		// anything else: a run that fails before its first commit would
		// otherwise start anew from a later position, and miss the
		// changes in between.
		return r.commit(ctx)
	}
	return nil
}

// The runner is the snapshotter's loadHost.
var _ loadHost = (*runner)(nil)

func (r *runner) table(name string) *tableRun { return r.tables[name] }

func (r *runner) eachTable(fn func(name string, tr *tableRun)) {
	for name, tr := range r.tables {
		fn(name, tr)
	}
}

func (r *runner) binlogLag() time.Duration { return r.readLag }

func (r *runner) moved() { r.dirty = true }

// newTableState starts capturing a table on the running stream: from the
// current position, with an incremental snapshot if its mode wants one.
func (r *runner) newTableState(t plan.CDCTable, now time.Time) *cdcstate.TableState {
	ts := &cdcstate.TableState{Mode: t.Snapshot, Since: r.st.Position}
	switch t.Snapshot {
	case schema.SnapshotInitial, schema.SnapshotWhenNeeded, "":
		ts.Snapshot = &cdcstate.SnapState{Started: now, Incremental: true}
	}
	return ts
}

func (r *runner) close() {
	if r.bgCancel != nil {
		r.bgCancel()
	}
	r.snap.stop()
	r.bg.Wait()
	if r.cl != nil {
		r.cl.Close()
	}
}

// loop is the job's event loop.
func (r *runner) loop(ctx context.Context) error {
	bgCtx, cancel := context.WithCancel(ctx)
	r.bgCancel = cancel
	pctx, pcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer pcancel()
	stopLate := context.AfterFunc(ctx, func() { time.AfterFunc(30*time.Second, pcancel) })
	defer stopLate()
	r.pctx = pctx
	r.readerCh = make(chan readMsg, 256)
	r.bg.Add(1)
	go r.heartbeat(bgCtx)
	r.startReader(bgCtx)
	r.snap.start(bgCtx)
	r.m.SetState(metrics.StateRunning, nil)

	interval := r.job.Client.CommitInterval.D()
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	tickEvery := max(min(interval, 50*time.Millisecond), 2*time.Millisecond)
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	r.lastCommit = time.Now()
	for {
		if ctx.Err() != nil {
			// A stop wins over pending messages (select picks at random).
			if errors.Is(context.Cause(ctx), errCrash) {
				return nil // as kill -9: the open Kafka transaction is left to be fenced
			}
			// Commit the whole MySQL transactions already in the Kafka
			// transaction; a crash instead would abort them and they
			// would be read again.
			return r.commit(ctx)
		}
		select {
		case <-ctx.Done():
			continue // the check above stops
		case msg := <-r.readerCh:
			if msg.err != nil {
				var ref *binlog.Refusal
				if errors.As(msg.err, &ref) {
					// The server changed under the job (a failover
					// behind the same address) to one it cannot go on
					// from: waiting does not fix that.
					return fmt.Errorf("%s: %w", r.job.ID, msg.err)
				}
				r.readerFailed(msg.err)
				continue
			}
			if r.waiting {
				r.waiting = false
				r.readerBO.reset()
				r.m.SetState(metrics.StateRunning, nil)
			}
			if err := r.process(ctx, msg.txn); err != nil {
				return err
			}
		case res := <-r.snap.results:
			if err := r.snap.onResult(ctx, res); err != nil {
				return err
			}
		case <-r.src.notify:
			if p := r.src.takeUpdate(); p != nil {
				if err := r.applyUpdate(ctx, *p); err != nil {
					return err
				}
			}
		case <-tick.C:
			if !r.reading && time.Now().After(r.reconnect) {
				r.startReader(bgCtx)
			}
			if err := r.snap.tick(ctx); err != nil {
				return err
			}
		}
		if r.shouldCommit(interval) {
			if err := r.commit(ctx); err != nil {
				return err
			}
		}
	}
}

func (r *runner) shouldCommit(interval time.Duration) bool {
	now := time.Now()
	if r.inTxn {
		return r.txnBytes >= maxTxnBytes || now.Sub(r.txnStart) >= interval
	}
	return r.dirty && now.Sub(r.lastCommit) >= idleCommit
}

// startReader opens the binlog at the processed position in a goroutine
// that sends whole transactions to the loop until the connection fails.
func (r *runner) startReader(ctx context.Context) {
	r.reading = true
	pos := r.st.Position
	flavor := r.srv.Flavor
	cfg := r.cfg
	ch := r.readerCh
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		rd, err := binlog.Open(ctx, cfg, flavor, pos, nil)
		if err != nil {
			select {
			case ch <- readMsg{err: err}:
			case <-ctx.Done():
			}
			return
		}
		defer rd.Close()
		for {
			txn, err := rd.Next(ctx)
			if err != nil {
				select {
				case ch <- readMsg{err: err}:
				case <-ctx.Done():
				}
				return
			}
			select {
			case ch <- readMsg{txn: txn}:
			case <-ctx.Done():
				return
			}
		}
	}()
}

// readerFailed notes a lost binlog connection: the job waits for the
// server and reads again from the last processed transaction.
func (r *runner) readerFailed(err error) {
	r.reading = false
	if errors.Is(err, context.Canceled) {
		return
	}
	r.waiting = true
	r.m.SetState(metrics.StateWaiting, fmt.Errorf("%s: binlog of %s at %s: %v", r.job.ID, r.cfg.Addr, r.st.Position.String(), err))
	r.log.Warn("binlog connection lost; reconnecting", "err", err, "at", r.st.Position.String())
	d := r.readerBO.d
	r.readerBO.d = min(2*r.readerBO.d, 2*time.Second)
	r.reconnect = time.Now().Add(d)
}

// sourceTime is the best lower bound of a transaction's commit time: the
// GTID event's microseconds (MySQL 8), else the later of the binlog
// header's second and the newest heartbeat before it (see docs/cdc.md, "Latency and the heartbeat").
func (r *runner) sourceTime(txn *binlog.Txn) time.Time {
	if txn.Micro {
		return txn.Time
	}
	if r.hbLast.After(txn.Time) {
		return r.hbLast
	}
	return txn.Time
}

// process turns a MySQL transaction into Kafka records in the open Kafka
// transaction.
func (r *runner) process(ctx context.Context, txn *binlog.Txn) error {
	now := time.Now()
	for i := range txn.Rows {
		row := &txn.Rows[i]
		t := row.Table
		if t.DB == r.hbDB {
			switch t.Name {
			case heartbeatTable:
				r.onHeartbeat(row)
				continue
			case watermarkTable:
				if row.After != nil && len(row.After) >= 2 {
					if err := r.snap.onWatermark(ctx, tokenOf(row.After[1])); err != nil {
						return err
					}
				}
				continue
			}
		}
		tr := r.tables[t.FullName()]
		if tr == nil {
			continue
		}
		// A Since of another server is before any transaction read
		// after a failover: the job resumed past it.
		if txn.Next.Origin.Same(tr.st.Since.Origin) && txn.Next.Compare(tr.st.Since) <= 0 {
			r.count(tr.p.Name, metrics.Filtered, 1) // before the table's capture began
			continue
		}
		if row.Err != nil {
			if err := r.unreadable(ctx, tr, txn, row); err != nil {
				return err
			}
			continue
		}
		if tr.unreadable {
			tr.unreadable = false
			r.m.SetPartError(tr.p.Name, nil)
		}
		ch := event.Change{Op: row.Op, Before: row.Before, After: row.After, Source: event.Source{
			Name: r.job.CDC.TopicPrefix, Time: txn.Time, ServerID: txn.ServerID, GTID: txn.GTID,
			File: txn.File, Pos: row.Pos, Row: row.Row, Thread: txn.Thread,
		}}
		recs, err := t.Encode(&ch, now)
		if err != nil {
			if err := r.deadLetter(ctx, tr, txn, row, err); err != nil {
				return err
			}
			continue
		}
		src := r.sourceTime(txn)
		// The commit time as measured here travels with the change, so a
		// sink measures its latency from the same, finer, lower bound.
		srcHeader := kgo.RecordHeader{Key: headers.SourceTime, Value: strconv.AppendInt(nil, src.UnixMicro(), 10)}
		r.snap.touch(tr.p.Name, t, &ch, recs)
		for k := range recs {
			if err := r.produce(ctx, tr.p.Topic, &recs[k], srcHeader); err != nil {
				return err
			}
			if recs[k].Value != nil {
				r.obs = append(r.obs, observation{table: tr.p.Name, src: src, bytes: len(recs[k].Key) + len(recs[k].Value)})
			}
		}
		switch row.Op {
		case event.OpCreate:
			r.count(tr.p.Name, metrics.Creates, 1)
		case event.OpUpdate:
			r.count(tr.p.Name, metrics.Updates, 1)
		case event.OpDelete:
			r.count(tr.p.Name, metrics.Deletes, 1)
		}
	}
	if txn.Rows != nil || txn.Next != r.st.Position {
		r.dirty = true
	}
	r.st.Position = txn.Next
	if !txn.Time.IsZero() {
		// How far behind the commit the loop is (reader and loop delays).
		r.readLag = time.Since(r.sourceTime(txn))
	}
	return nil
}

func tokenOf(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

func (r *runner) onHeartbeat(row *binlog.Rows) {
	if row.After == nil || len(row.After) < 2 {
		return
	}
	s := tokenOf(row.After[1])
	if s == "" {
		return
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.UTC)
	if err == nil && t.After(r.hbLast) {
		r.hbLast = t
		r.m.SetHeartbeat(t)
	}
}

func (r *runner) count(table, counter string, n int64) {
	c := r.counts[table]
	if c == nil {
		c = map[string]int64{}
		r.counts[table] = c
	}
	c[counter] += n
}

func (r *runner) begin() error {
	if r.inTxn {
		return nil
	}
	if err := r.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("%s: begin Kafka transaction: %w", r.job.ID, err)
	}
	r.inTxn = true
	r.txnStart = time.Now()
	r.txnBytes = 0
	return nil
}

func (r *runner) produced(rec *kgo.Record, err error) {
	defer r.inflight.Done()
	r.failed(rec, err)
}

// failed keeps the transaction's first failed record.
func (r *runner) failed(rec *kgo.Record, err error) {
	if err == nil {
		return
	}
	r.prodMu.Lock()
	if r.prodErr == nil {
		r.prodErr, r.prodRec = err, rec
	}
	r.prodMu.Unlock()
}

func (r *runner) produce(ctx context.Context, topic string, rec *event.Record, extra ...kgo.RecordHeader) error {
	kr := &kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value}
	for k, v := range rec.Headers {
		kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: k, Value: v})
	}
	kr.Headers = append(kr.Headers, extra...)
	return r.send(kr)
}

// send produces a record in the open transaction, beginning one if none
// is open. Records are produced under r.pctx, which a stop does not
// cancel at once: a clean stop commits them, never half-fails a
// transaction.
func (r *runner) send(kr *kgo.Record) error {
	if err := r.begin(); err != nil {
		return err
	}
	kr = r.screen(kr)
	r.txnBytes += len(kr.Key) + len(kr.Value)
	if r.alone[kr.Topic] {
		// Alone in its batch: the broker judges the record itself.
		r.failed(kr, r.cl.ProduceSync(r.pctx, kr).FirstErr())
		return nil
	}
	r.inflight.Add(1)
	r.cl.Produce(r.pctx, kr, r.promise)
	return nil
}

// unreadable sends a rows event that cannot be read to ferry.dlq, with its
// bytes, and shows why on its table: the table's other changes and the
// source's other tables go on.
func (r *runner) unreadable(ctx context.Context, tr *tableRun, txn *binlog.Txn, row *binlog.Rows) error {
	if err := r.deadLetter(ctx, tr, txn, row, row.Err); err != nil {
		return err
	}
	tr.unreadable = true
	r.m.SetPartError(tr.p.Name, fmt.Errorf("binlog %s:%d: %w (the event is in ferry.dlq)", txn.File, row.Pos, row.Err))
	return nil
}

// deadLetter sends a row that cannot be converted to ferry.dlq, in the same
// transaction, and capture goes on.
func (r *runner) deadLetter(ctx context.Context, tr *tableRun, txn *binlog.Txn, row *binlog.Rows, cause error) error {
	fields := map[string]any{"op": string(row.Op), "before": row.Before, "after": row.After}
	if row.Event != nil {
		fields["binlog_event"] = row.Event // base64
	}
	raw := mustJSON(fields)
	return r.deadLetterRaw(ctx, tr, raw, cause, []kgo.RecordHeader{
		{Key: "ferry.error.binlog.file", Value: []byte(txn.File)},
		{Key: "ferry.error.binlog.pos", Value: []byte(strconv.FormatUint(row.Pos, 10))},
		{Key: "ferry.error.binlog.row", Value: []byte(strconv.Itoa(row.Row))},
		{Key: "ferry.error.binlog.gtid", Value: []byte(txn.GTID)},
	})
}

// deadLetterRaw sends a row (as JSON of its raw values) to ferry.dlq.
func (r *runner) deadLetterRaw(ctx context.Context, tr *tableRun, raw []byte, cause error, extra []kgo.RecordHeader) error {
	rec := dlq.Record(&kgo.Record{Topic: tr.p.Topic, Value: raw}, dlq.Failure{
		Job: r.job.ID, Topic: tr.p.Topic, Partition: -1, Offset: -1,
		Class: "conversion", Message: cause.Error(), Extra: extra,
	})
	if err := r.send(rec); err != nil {
		return err
	}
	r.count(tr.p.Name, metrics.Failed, 1)
	r.count(tr.p.Name, metrics.DeadLetters, 1)
	r.log.Warn("row sent to ferry.dlq", "table", tr.p.Name, "err", cause)
	return nil
}

// commit ends the Kafka transaction with the checkpoint in it.
func (r *runner) commit(parent context.Context) error {
	// Not cancelled by a stop, but bounded: a commit is finished or fails.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 30*time.Second)
	defer cancel()
	if !r.inTxn && !r.dirty {
		return nil
	}
	if err := r.begin(); err != nil {
		return err
	}
	r.inflight.Add(1)
	ck := checkpoint.Record(r.job.ID, cdcstate.Key, r.st.Encode())
	r.cl.Produce(ctx, ck, r.promise)
	if err := r.cl.Flush(ctx); err != nil {
		return fmt.Errorf("%s: flush: %w", r.job.ID, err)
	}
	r.inflight.Wait()
	r.snap.release()
	r.prodMu.Lock()
	perr, prec := r.prodErr, r.prodRec
	r.prodErr, r.prodRec = nil, nil
	r.prodMu.Unlock()
	if perr != nil {
		_ = r.cl.EndTransaction(ctx, kgo.TryAbort)
		r.inTxn = false
		r.src.notePoison(prec, perr)
		if prec != nil && prec.Topic == systopics.DLQ {
			return fmt.Errorf("%s: a dead letter for %s cannot be written to %s either: %w", r.job.ID, deadLetterTopic(prec), systopics.DLQ, perr)
		}
		return fmt.Errorf("%s: produce: %w", r.job.ID, perr)
	}
	if err := r.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		r.inTxn = false
		return fmt.Errorf("%s: commit Kafka transaction: %w", r.job.ID, err)
	}
	if !r.landed {
		if err := kafkaconn.Landed(ctx, r.opts, ck); err != nil {
			return fmt.Errorf("%s: %w: starting again from the last checkpoint", r.job.ID, err)
		}
		r.landed = true
	}
	if len(r.aloneIDs) > 0 {
		if err := r.endAlone(ctx); err != nil {
			return err
		}
	}
	now := time.Now()
	r.inTxn, r.dirty = false, false
	r.lastCommit = now
	// One ObserveAll per table: the transaction's records under one lock.
	byTable := map[string][]metrics.Sample{}
	for _, o := range r.obs {
		byTable[o.table] = append(byTable[o.table], metrics.Sample{Latency: now.Sub(o.src), Bytes: o.bytes})
	}
	for table, samples := range byTable {
		budget := r.job.Budget.D()
		if tr := r.tables[table]; tr != nil {
			budget = tr.p.Budget.D()
		}
		r.m.ObserveAll(table, budget, samples...)
	}
	r.obs = r.obs[:0]
	for table, cs := range r.counts {
		for name, n := range cs {
			r.m.Count(table, name, n)
		}
		delete(r.counts, table)
	}
	return nil
}

// applyUpdate applies a plan change that only touches tables, on the
// running connection.
func (r *runner) applyUpdate(ctx context.Context, p plan.Job) error {
	now := time.Now().UTC()
	planned := map[string]plan.CDCTable{}
	var added []plan.CDCTable
	for _, t := range p.CDC.Tables {
		planned[t.Name] = t
		if tr, ok := r.tables[t.Name]; ok {
			tr.p = t // a new tier or budget applies from now on
			continue
		}
		added = append(added, t)
	}
	if len(added) > 0 {
		cl, err := kgo.NewClient(r.opts...)
		if err != nil {
			return err
		}
		err = ensureTopics(ctx, kadm.NewClient(cl), added)
		cl.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", r.job.ID, err)
		}
	}
	for name := range r.tables {
		if _, ok := planned[name]; !ok {
			r.log.Info("table removed from capture", "table", name)
			r.snap.drop(name)
			delete(r.tables, name)
			delete(r.st.Tables, name)
			r.m.DropPart(name)
		}
	}
	for _, t := range added {
		ts := r.newTableState(t, now)
		r.st.Tables[t.Name] = ts
		r.tables[t.Name] = &tableRun{p: t, st: ts}
		r.log.Info("table added to capture on the running connection", "table", t.Name, "snapshot", t.Snapshot, "since", ts.Since.String())
		if ts.Snapshot != nil {
			r.snap.add(ctx, t.Name, ts.Snapshot)
		}
	}
	r.job = p
	r.dirty = true
	return nil
}

// heartbeat writes NOW(6) into the heartbeat table every interval, so the
// binlog carries a microsecond clock reading between transactions.
func (r *runner) heartbeat(ctx context.Context) {
	defer r.bg.Done()
	var c *client.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	stmt := "INSERT INTO `" + r.hbDB + "`.`" + heartbeatTable + "` (server_id, ts) VALUES (" +
		strconv.FormatUint(uint64(r.cfg.ServerID), 10) + ", NOW(6)) ON DUPLICATE KEY UPDATE ts = NOW(6)"
	t := time.NewTicker(r.hbInterval)
	defer t.Stop()
	// The first beat at once: until one is read from the binlog, a
	// transaction's commit time is known to the second only.
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		if c == nil {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			var err error
			c, err = binlog.Connect(cctx, r.cfg)
			cancel()
			if err != nil {
				c = nil
				continue
			}
			if _, err := c.Execute("SET time_zone = '+00:00'"); err != nil {
				c.Close()
				c = nil
				continue
			}
		}
		if _, err := c.Execute(stmt); err != nil {
			c.Close()
			c = nil
		}
	}
}
