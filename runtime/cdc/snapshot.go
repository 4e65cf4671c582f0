package cdc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/cdc/event"
	"github.com/ferry-pipelines/ferry/runtime/cdcstate"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// The initial load, DBLog style ("multi-window" on one binlog stream).
//
// Each table's primary key range is cut into chunks of chunkSize rows by a
// planner (SELECT pk ... WHERE pk > :lo ORDER BY pk LIMIT 1 OFFSET n-1,
// an index-only read). Up to `parallelism` chunks, of any of the tables
// being loaded, are in flight at once. A worker reads a chunk between two
// watermarks it writes to ferry_watermark (its own committed
// transactions): low watermark, SELECT of the chunk, high watermark. The
// event loop, reading the binlog in order, opens the chunk's window at the
// low watermark and from then on records every key of the table that a
// binlog event changes. Once the high watermark has passed and every
// earlier chunk of the table is out, the chunk's rows are emitted as
// op "r", except the keys changed since the low watermark: their binlog
// events, which are newer than the SELECT, already went out. A row that
// was not changed between the low watermark and the emission still has
// the value the SELECT read, so emitting it there keeps each key's events
// in order. No lock is taken and no binlog event waits for a chunk.
//
// Chunks go out in primary key order, so the checkpoint (in the same Kafka
// transaction as the rows) holds just the last emitted key: a restart goes
// on from the next chunk.
//
// A table without a key is one chunk, read whole, and its rows cannot be
// told from their changes: the chunk goes out whole as the table at the
// binlog position read before its SELECT, or is read again when a change
// in its window may be on the wrong side of that position
// (wholeReadStale).

// loadHost is what the snapshotter needs of the job it loads for: where
// its records go, the captured tables, and how far the binlog reader lags.
// The runner is one; the snapshotter knows nothing else of it.
type loadHost interface {
	// send writes a record in the open Kafka transaction.
	send(kr *kgo.Record) error
	// deadLetterRaw sends a row that cannot be converted to ferry.dlq.
	deadLetterRaw(ctx context.Context, tr *tableRun, raw []byte, cause error, extra []kgo.RecordHeader) error
	// count adds to a table's counter.
	count(table, counter string, n int64)
	// table is a captured table, nil when it is not (any more).
	table(name string) *tableRun
	// eachTable calls fn for every captured table.
	eachTable(fn func(name string, tr *tableRun))
	// readLag is how far the binlog reader is behind the server.
	binlogLag() time.Duration
	// moved records that the state changed, so a commit is due.
	moved()
}

// loadSettings are the load's fixed settings and the job's facilities.
type loadSettings struct {
	cfg         binlog.Config
	flavor      string
	jobID       string
	topicPrefix string
	hbDB        string // where the watermark table is
	chunkSize   int
	parallelism int
	m           *metrics.Job
	log         *slog.Logger
	bg          *sync.WaitGroup // the job's background goroutines
}

type snapshotter struct {
	h loadHost
	loadSettings
	work    chan *chunk
	results chan chunkResult
	tables  map[string]*snapTable
	tokens  map[string]*chunk
	order   []string
	next    int
	ctx     context.Context
	cancel  context.CancelFunc
	started bool
	bufs    bufPool
	sent    []*chunkBufs // emitted in the open Kafka transaction
	// failed holds the tables whose load cannot go on as they are, and
	// when to try each again.
	failed map[string]time.Time
}

// retryFailedLoad is how long a table whose load failed (no key, no such
// table, no privilege) waits before it is tried again, in case it was fixed.
const retryFailedLoad = 30 * time.Second

type snapTable struct {
	name     string
	db, tbl  string
	st       *cdcstate.SnapState
	ranges   chan chunkRange
	cancel   context.CancelFunc
	chunks   []*chunk
	seq      int
	planDone bool
	estimate int64
	start    time.Time
	startRow int64
	lastLog  time.Time
	keyKinds []event.Kind
	keyCols  []string
	declared []string // the key the definitions name, if any
	// rowBytes is the most record bytes per row a chunk of the table has
	// had; 0 until the first chunk is read. The loop writes it, the
	// planner reads it to size the next chunks.
	rowBytes atomic.Int64
}

type chunkRange struct {
	lo, hi [][]byte // nil lo: from the start; nil hi: to the end
	size   int      // the rows it was cut for (the last may have more)
	last   bool
	err    error
	// table info, sent with the first range (info set); no key columns:
	// the table has no key and is read whole
	info     bool
	keyCols  []string
	keyKinds []event.Kind
	estimate int64
}

type chunk struct {
	t       *snapTable
	seq     int
	rng     chunkRange
	lw, hw  string
	lwSeen  bool
	hwSeen  bool
	changed map[string]struct{}
	rows    *chunkRows
	busy    bool // with a worker
	retryAt time.Time
	// Of a table without a key: how often it was read whole, and the
	// position of the first change in the window.
	reads       int
	firstChange binlog.Position
}

type chunkRows struct {
	bufs   *chunkBufs
	recs   []event.Record // in bufs
	failed []failedRow    // rows that cannot be converted: dead letters
	cut    [][]byte       // the chunk was cut short after this key
	pos    binlog.Position
	// contents are the rows' sums (rowSum) when the table has no key.
	contents map[string]struct{}
}

// chunkBufs are a chunk's buffers: its records' bytes, the records, and
// their Kafka records. They go back to the snapshotter's pool once the
// Kafka transaction that carried them has ended (see runner.commit), so a
// load allocates and zeroes a few chunks' worth of memory, not a chunk's
// worth per chunk.
type chunkBufs struct {
	arena []byte
	offs  [][3]int // key start, key end (value start), value end
	recs  []event.Record
	krs   []kgo.Record
}

// bufPool hands out chunk buffers, emptied.
type bufPool struct{ sync.Pool }

func (p *bufPool) get() *chunkBufs {
	b, _ := p.Get().(*chunkBufs)
	if b == nil {
		return new(chunkBufs)
	}
	b.arena, b.offs = b.arena[:0], b.offs[:0]
	return b
}

type failedRow struct {
	key string // the key, where it could be written, for the window check
	raw []byte
	err error
}

type chunkResult struct {
	c    *chunk
	rows *chunkRows
	err  error
}

func newSnapshotter(h loadHost, set loadSettings) *snapshotter {
	s := &snapshotter{
		h:            h,
		loadSettings: set,
		tables:       map[string]*snapTable{},
		tokens:       map[string]*chunk{},
		failed:       map[string]time.Time{},
	}
	if s.chunkSize <= 0 {
		s.chunkSize = DefaultChunkSize
	}
	if s.parallelism <= 0 {
		s.parallelism = DefaultParallelism
	}
	s.work = make(chan *chunk, s.parallelism)
	s.results = make(chan chunkResult, s.parallelism)
	return s
}

// start launches the workers and a planner for each table whose load is
// not done.
func (s *snapshotter) start(ctx context.Context) {
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.started = true
	for i := 0; i < s.parallelism; i++ {
		s.bg.Add(1)
		go s.worker(s.ctx, i)
	}
	s.h.eachTable(func(name string, tr *tableRun) {
		if tr.st.Snapshot != nil && !tr.st.Snapshot.Done {
			s.add(ctx, name, tr.st.Snapshot)
		}
	})
}

func (s *snapshotter) stop() {
	if s.cancel != nil {
		s.cancel()
	}
}

// add starts loading a table.
func (s *snapshotter) add(_ context.Context, name string, st *cdcstate.SnapState) {
	if !s.started {
		return // start picks it up
	}
	if _, ok := s.tables[name]; ok {
		return
	}
	delete(s.failed, name)
	db, tbl, _ := strings.Cut(name, ".")
	pctx, cancel := context.WithCancel(s.ctx)
	t := &snapTable{name: name, db: db, tbl: tbl, st: st, ranges: make(chan chunkRange, s.parallelism), cancel: cancel, start: time.Now(), startRow: st.Rows}
	if tr := s.h.table(name); tr != nil {
		t.declared = tr.p.Key
	}
	s.tables[name] = t
	s.order = append(s.order, name)
	s.bg.Add(1)
	go s.planner(pctx, t, st.After)
	s.log.Info("initial load started", "table", name, "after", keyText(st.After), "rows", st.Rows)
}

// fail stops loading a table that cannot be loaded as it is: its error
// shows on the table (ferry status, /v1/jobs) while the source's other
// tables go on, and its changes keep streaming, so that nothing is lost
// when its load, tried again after retryFailedLoad, succeeds.
func (s *snapshotter) fail(name string, err error) {
	s.drop(name)
	s.failed[name] = time.Now().Add(retryFailedLoad)
	s.m.SetPartError(name, fmt.Errorf("initial load: %w", err))
	s.log.Warn("initial load cannot go on; the source's other tables do", "table", name, "err", err, "retry in", retryFailedLoad)
}

// retryFailed starts again the loads whose wait is over.
func (s *snapshotter) retryFailed(ctx context.Context, now time.Time) {
	for name, at := range s.failed {
		tr := s.h.table(name)
		switch {
		case tr == nil || tr.st.Snapshot == nil || tr.st.Snapshot.Done:
			delete(s.failed, name) // it left the plan meanwhile
		case now.After(at):
			s.add(ctx, name, tr.st.Snapshot)
		}
	}
}

// drop stops loading a table (it left the plan).
func (s *snapshotter) drop(name string) {
	t := s.tables[name]
	if t == nil {
		return
	}
	t.cancel()
	for _, c := range t.chunks {
		delete(s.tokens, c.lw)
		delete(s.tokens, c.hw)
	}
	delete(s.tables, name)
	for i, n := range s.order {
		if n == name {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

func (s *snapshotter) inFlight() int {
	n := 0
	for _, t := range s.tables {
		n += len(t.chunks)
	}
	return n
}

// paced reports that the load must slow down to one chunk at a time: the
// binlog reader is behind by more than a sixth of the strictest captured
// table's budget, so the load yields to change capture. (At a third, the
// benchmark's Tier 1 table had p99 210-243 ms during a load, at a sixth
// 166-192 ms, for about the same load rate.)
func (s *snapshotter) paced() bool {
	var strictest time.Duration
	s.h.eachTable(func(_ string, tr *tableRun) {
		if b := tr.p.Budget.D(); b > 0 && (strictest == 0 || b < strictest) {
			strictest = b
		}
	})
	return strictest > 0 && s.h.binlogLag() > strictest/6
}

// tick dispatches chunks to free workers and retries failed ones.
func (s *snapshotter) tick(ctx context.Context) error {
	now := time.Now()
	s.retryFailed(ctx, now)
	for _, t := range s.tables {
		for _, c := range t.chunks {
			if !c.busy && c.rows == nil && !c.retryAt.IsZero() && now.After(c.retryAt) {
				s.send(c)
			}
		}
	}
	if len(s.order) == 0 {
		return nil
	}
	// While change capture lags, one chunk at a time: the load yields
	// without starving.
	limit := s.parallelism
	if s.paced() {
		limit = 1
	}
	for tries := 0; s.inFlight() < limit && tries < len(s.order); {
		name := s.order[s.next%len(s.order)]
		s.next++
		t := s.tables[name]
		if t.planDone {
			tries++
			continue
		}
		select {
		case rng := <-t.ranges:
			if rng.err != nil {
				s.fail(name, rng.err)
				if len(s.order) == 0 {
					return nil
				}
				continue
			}
			if rng.info {
				s.m.SetPartError(name, nil)
				t.keyCols, t.keyKinds, t.estimate = rng.keyCols, rng.keyKinds, rng.estimate
				s.m.SetProgress(name, t.st.Rows, max(t.estimate, t.st.Rows), 0)
			}
			if rng.last {
				t.planDone = true
			}
			c := &chunk{t: t, seq: t.seq, rng: rng}
			t.seq++
			t.chunks = append(t.chunks, c)
			s.send(c)
			tries = 0
		default:
			tries++
		}
	}
	return nil
}

// send gives a chunk fresh watermark tokens and hands it to a worker.
func (s *snapshotter) send(c *chunk) {
	delete(s.tokens, c.lw)
	delete(s.tokens, c.hw)
	c.lw, c.hw = newToken("lw"), newToken("hw")
	c.lwSeen, c.hwSeen, c.changed, c.rows, c.firstChange = false, false, nil, nil, binlog.Position{}
	c.retryAt = time.Time{}
	s.tokens[c.lw], s.tokens[c.hw] = c, c
	c.busy = true
	s.work <- c
}

func newToken(kind string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return kind + "-" + hex.EncodeToString(b[:])
}

// touch records the rows that a binlog change of a table alters in the
// table's open windows: their keys (recs), or, when the table has no key,
// what windowKeys says of it.
func (s *snapshotter) touch(table string, t *event.Table, ch *event.Change, recs []event.Record) {
	st := s.tables[table]
	if st == nil {
		return
	}
	whole := len(st.keyCols) == 0
	var keys []string
	for _, c := range st.chunks {
		if !c.lwSeen || whole && c.hwSeen {
			continue
		}
		if keys == nil {
			keys = windowKeys(whole, t, ch, recs)
		}
		for _, k := range keys {
			c.changed[k] = struct{}{}
		}
		if whole && c.firstChange.File == "" {
			c.firstChange = binlog.Position{File: ch.Source.File, Pos: ch.Source.Pos}
		}
	}
}

// anyRow stands for every row of a table without a key.
const anyRow = ""

// windowKeys are the keys by which a chunk tells the rows a change alters:
// the events' keys, or, for a table without a key (whole), the sum of the
// row a change leaves, or anyRow for a delete (see wholeReadStale).
func windowKeys(whole bool, t *event.Table, ch *event.Change, recs []event.Record) []string {
	var keys []string
	if !whole {
		for _, r := range recs {
			if r.Key != nil {
				keys = append(keys, string(r.Key))
			}
		}
		return keys
	}
	if ch.After == nil {
		return []string{anyRow}
	}
	if sum, ok := rowSum(t, ch.After); ok {
		return []string{sum}
	}
	return []string{anyRow}
}

// rowSeed seeds rowSum: a process's loads and changes sum rows alike.
var rowSeed = maphash.MakeSeed()

// rowSum is a digest of a row's contents as its events carry them, which
// stands for the row in a table without a key. Equal rows have the same
// sum; so, rarely, may two others, which only makes the load read the
// table again.
func rowSum(t *event.Table, row []any) (string, bool) {
	b, err := t.AppendRow(nil, row)
	if err != nil {
		return "", false
	}
	return strconv.FormatUint(maphash.Bytes(rowSeed, b), 36), true
}

// onWatermark handles a watermark read from the binlog.
func (s *snapshotter) onWatermark(ctx context.Context, token string) error {
	c := s.tokens[token]
	if c == nil {
		return nil // a token of a chunk that failed, or of an earlier run
	}
	switch token {
	case c.lw:
		c.lwSeen = true
		c.changed = map[string]struct{}{}
	case c.hw:
		if !c.lwSeen {
			return nil
		}
		c.hwSeen = true
		if err := s.emit(ctx, c.t); err != nil {
			return err
		}
		return s.tick(ctx)
	}
	return nil
}

// onResult takes a worker's chunk.
func (s *snapshotter) onResult(ctx context.Context, res chunkResult) error {
	c := res.c
	c.busy = false
	if s.tables[c.t.name] != c.t {
		return nil // dropped
	}
	if isFatal(res.err) {
		s.fail(c.t.name, res.err)
		return s.tick(ctx)
	}
	if res.err != nil {
		s.log.Warn("chunk read failed; retrying", "table", c.t.name, "chunk", c.seq, "err", res.err)
		delete(s.tokens, c.lw)
		delete(s.tokens, c.hw)
		c.retryAt = time.Now().Add(time.Second)
		return nil
	}
	c.rows = res.rows
	if cut := res.rows.cut; cut != nil {
		// The rest of the chunk's range is a chunk of its own, next in order.
		rest := &chunk{t: c.t, seq: c.t.seq, rng: chunkRange{lo: cut, hi: c.rng.hi, last: c.rng.last, size: max(len(res.rows.recs), 1)}}
		c.t.seq++
		c.rng.hi, c.rng.last = cut, false
		c.t.chunks = slices.Insert(c.t.chunks, slices.Index(c.t.chunks, c)+1, rest)
		s.send(rest)
	}
	if n := int64(len(res.rows.recs)); n > 0 {
		if per := int64(len(res.rows.bufs.arena)) / n; per > c.t.rowBytes.Load() {
			c.t.rowBytes.Store(per)
		}
	}
	if err := s.emit(ctx, c.t); err != nil {
		return err
	}
	return s.tick(ctx)
}

// emit sends out the table's chunks that are complete, in order.
func (s *snapshotter) emit(ctx context.Context, t *snapTable) error {
	for len(t.chunks) > 0 {
		c := t.chunks[0]
		if !c.hwSeen || c.rows == nil {
			return nil
		}
		if len(t.keyCols) == 0 && wholeReadStale(c) {
			s.readAgain(c)
			return nil
		}
		var n, bytes int64
		// The chunk's Kafka records in one buffer, stamped with one clock
		// read: a chunk goes out at one moment.
		topic, now := s.h.table(t.name).p.Topic, time.Now()
		b := c.rows.bufs
		b.krs = slices.Grow(b.krs[:0], len(c.rows.recs))[:len(c.rows.recs)]
		krs := b.krs
		s.sent = append(s.sent, b)
		for i := range c.rows.recs {
			rec := &c.rows.recs[i]
			if _, changed := c.changed[string(rec.Key)]; changed && rec.Key != nil {
				continue
			}
			krs[i] = kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value, Timestamp: now}
			if err := s.h.send(&krs[i]); err != nil {
				return err
			}
			n++
			bytes += int64(len(rec.Key) + len(rec.Value))
		}
		for _, f := range c.rows.failed {
			if _, changed := c.changed[f.key]; changed && f.key != "" {
				continue
			}
			if err := s.h.deadLetterRaw(ctx, s.h.table(t.name), f.raw, f.err, []kgo.RecordHeader{
				{Key: "ferry.error.binlog.file", Value: []byte(c.rows.pos.File)},
				{Key: "ferry.error.binlog.pos", Value: []byte(strconv.FormatUint(c.rows.pos.Pos, 10))},
			}); err != nil {
				return err
			}
		}
		// Loaded rows count as records written (throughput), not against
		// the latency budget: they are not changes with a commit time.
		s.h.count(t.name, metrics.SnapshotRead, n)
		s.h.count(t.name, metrics.Records, n)
		s.h.count(t.name, metrics.Bytes, bytes)
		t.st.Rows += n
		if c.rng.last {
			t.st.Done = true
			t.st.After = nil
		} else {
			t.st.After = c.rng.hi
		}
		s.h.moved()
		delete(s.tokens, c.lw)
		delete(s.tokens, c.hw)
		t.chunks = t.chunks[1:]
		s.progress(t)
		if t.st.Done {
			s.finish(t)
			return nil
		}
	}
	return nil
}

// nameAKey ends the lines of a table without a key that cannot be read
// whole: what the user can do instead.
const nameAKey = `name the columns that identify a row with key: [...] on the table, or set snapshot: "no_data" to capture its changes only`

// maxWholeReads is how often a table without a key is read whole before
// its load fails for changing during each read; wholeReadPause the pause
// before the second read, doubled before each next (about 100 s over all).
const (
	maxWholeReads  = 10
	wholeReadPause = 200 * time.Millisecond
)

// wholeReadStale reports that the read of a table without a key is not
// the table at the position in its rows' source block (rows.pos, read
// after the low watermark and before the SELECT), whose changes after
// that position go out as events. Without a key, a change cannot be
// matched to the row it alters, so the read is stale when a change in its
// window may be on the wrong side of it:
//   - a change written to the binlog up to rows.pos: the server may have
//     made it visible after the SELECT began, so the read may lack it;
//   - a change after rows.pos that left a row the read holds: the read may
//     have it, and its event as well;
//   - a delete after rows.pos: the read may lack the row, as equal rows
//     may remain, its absence cannot be told.
//
// Changes after the high watermark are after the SELECT.
func wholeReadStale(c *chunk) bool {
	if c.firstChange.File == "" {
		return false
	}
	if c.firstChange.Compare(c.rows.pos) <= 0 {
		return true
	}
	if _, ok := c.changed[anyRow]; ok {
		return true
	}
	for k := range c.changed {
		if _, ok := c.rows.contents[k]; ok {
			return true
		}
	}
	return false
}

// readAgain reads a stale chunk of a table without a key again (see
// wholeReadStale), after a pause that doubles with each read, so that a
// burst of changes passes.
func (s *snapshotter) readAgain(c *chunk) {
	s.bufs.Put(c.rows.bufs)
	c.rows = nil
	c.hwSeen = false
	delete(s.tokens, c.lw)
	delete(s.tokens, c.hw)
	if c.reads++; c.reads >= maxWholeReads {
		s.fail(c.t.name, fatalError{fmt.Errorf("table %s.%s has no key, and it changed during each of %d reads of it whole; %s", c.t.db, c.t.tbl, c.reads, nameAKey)})
		return
	}
	wait := wholeReadPause << (c.reads - 1)
	s.log.Info("table without a key changed while read whole; reading it again", "table", c.t.name, "read", c.reads, "in", wait)
	c.retryAt = time.Now().Add(wait)
}

// rate is the table's load rate in rows/s since the load (re)started.
func (t *snapTable) rate() float64 {
	return float64(t.st.Rows-t.startRow) / max(time.Since(t.start).Seconds(), 0.001)
}

func (s *snapshotter) progress(t *snapTable) {
	total := max(t.estimate, t.st.Rows)
	rate := t.rate()
	s.m.SetProgress(t.name, t.st.Rows, total, rate)
	if time.Since(t.lastLog) >= 10*time.Second || t.st.Done {
		t.lastLog = time.Now()
		eta := "-"
		if rate > 0 && total > t.st.Rows {
			eta = (time.Duration(float64(total-t.st.Rows)/rate) * time.Second).Round(time.Second).String()
		}
		s.log.Info("initial load", "table", t.name, "rows", t.st.Rows, "estimate", total, "rows_per_s", int64(rate), "eta", eta)
	}
}

func (s *snapshotter) finish(t *snapTable) {
	s.m.SetProgress(t.name, t.st.Rows, t.st.Rows, t.rate())
	s.log.Info("initial load done", "table", t.name, "rows", t.st.Rows, "took", time.Since(t.start).Round(time.Millisecond).String())
	t.cancel()
	delete(s.tables, t.name)
	for i, n := range s.order {
		if n == t.name {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

// release returns the buffers of the chunks emitted in a Kafka transaction
// that has ended: every record's promise has run, so kgo holds none of
// their bytes.
func (s *snapshotter) release() {
	for i, b := range s.sent {
		s.bufs.Put(b)
		s.sent[i] = nil
	}
	s.sent = s.sent[:0]
}
