package cdc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/schollz/progressbar/v3"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/term"

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

type snapshotter struct {
	r           *runner
	chunkSize   int
	parallelism int
	work        chan *chunk
	results     chan chunkResult
	tables      map[string]*snapTable
	tokens      map[string]*chunk
	order       []string
	next        int
	ctx         context.Context
	cancel      context.CancelFunc
	started     bool
	tty         bool
	bufs        bufPool
	sent        []*chunkBufs // emitted in the open Kafka transaction
}

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
	bar      *progressbar.ProgressBar
	keyKinds []event.Kind
	keyCols  []string
	// rowBytes is the most record bytes per row a chunk of the table has
	// had; 0 until the first chunk is read. The loop writes it, the
	// planner reads it to size the next chunks.
	rowBytes atomic.Int64
}

// Chunk sizes. A chunk's records are held until its high watermark has
// passed, so a chunk is cut to about chunkBytes of records: fewer rows than
// snapshot.chunkSize where rows are large (BLOBs, documents). Until a
// table's first chunk has been read its chunks have probeRows rows; from
// then on the largest bytes per row seen size them. (The server's
// AVG_ROW_LENGTH cannot be used: InnoDB leaves the BLOB pages out of it.)
// chunkBytes is a variable for tests.
var chunkBytes int64 = 64 << 20

const probeRows = 16

// chunkRowCount is the row count of the next chunk of a table whose records
// take rowBytes per row: at most limit.
func chunkRowCount(limit int, rowBytes int64) int {
	if rowBytes <= 0 {
		return min(limit, probeRows)
	}
	return int(max(1, min(int64(limit), chunkBytes/rowBytes)))
}

type chunkRange struct {
	lo, hi [][]byte // nil lo: from the start; nil hi: to the end
	size   int      // the rows it was cut for (the last may have more)
	last   bool
	err    error
	// table info, sent with the first range
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
}

type chunkRows struct {
	bufs   *chunkBufs
	recs   []event.Record // in bufs
	failed []failedRow    // rows that cannot be converted: dead letters
	cut    [][]byte       // the chunk was cut short after this key
	pos    binlog.Position
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

func newSnapshotter(r *runner) *snapshotter {
	s := &snapshotter{
		r:           r,
		chunkSize:   r.job.CDC.Snapshot.ChunkSize,
		parallelism: r.job.CDC.Snapshot.Parallelism,
		tables:      map[string]*snapTable{},
		tokens:      map[string]*chunk{},
		tty:         term.IsTerminal(int(os.Stderr.Fd())),
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
		s.r.bg.Add(1)
		go s.worker(s.ctx, i)
	}
	for name, tr := range s.r.tables {
		if tr.st.Snapshot != nil && !tr.st.Snapshot.Done {
			s.add(ctx, name, tr.st.Snapshot)
		}
	}
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
	db, tbl, _ := strings.Cut(name, ".")
	pctx, cancel := context.WithCancel(s.ctx)
	t := &snapTable{name: name, db: db, tbl: tbl, st: st, ranges: make(chan chunkRange, s.parallelism), cancel: cancel, start: time.Now(), startRow: st.Rows}
	s.tables[name] = t
	s.order = append(s.order, name)
	s.r.bg.Add(1)
	go s.planner(pctx, t, st.After)
	s.r.log.Info("initial load started", "table", name, "after", keyText(st.After), "rows", st.Rows)
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
	for _, tr := range s.r.tables {
		if b := tr.p.Budget.D(); b > 0 && (strictest == 0 || b < strictest) {
			strictest = b
		}
	}
	return strictest > 0 && s.r.readLag > strictest/6
}

// tick dispatches chunks to free workers and retries failed ones.
func (s *snapshotter) tick(_ context.Context) error {
	now := time.Now()
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
				return fmt.Errorf("%s: initial load of %s: %w", s.r.job.ID, name, rng.err)
			}
			if rng.keyCols != nil {
				t.keyCols, t.keyKinds, t.estimate = rng.keyCols, rng.keyKinds, rng.estimate
				s.r.m.SetProgress(name, t.st.Rows, max(t.estimate, t.st.Rows), 0)
				if s.tty && t.bar == nil {
					t.bar = progressbar.NewOptions64(max(t.estimate, 1),
						progressbar.OptionSetWriter(os.Stderr),
						progressbar.OptionSetDescription(name),
						progressbar.OptionShowCount(), progressbar.OptionShowIts(),
						progressbar.OptionSetItsString("rows"),
						progressbar.OptionThrottle(200*time.Millisecond),
						progressbar.OptionSetPredictTime(true))
					_ = t.bar.Set64(t.st.Rows)
				}
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
	c.lwSeen, c.hwSeen, c.changed, c.rows = false, false, nil, nil
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

// touch records a key changed by a binlog event in the open windows of
// its table.
func (s *snapshotter) touch(table string, key []byte) {
	t := s.tables[table]
	if t == nil || key == nil {
		return
	}
	for _, c := range t.chunks {
		if c.lwSeen {
			c.changed[string(key)] = struct{}{}
		}
	}
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
	if res.err != nil {
		s.r.log.Warn("chunk read failed; retrying", "table", c.t.name, "chunk", c.seq, "err", res.err)
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
		var n, bytes int64
		// The chunk's Kafka records in one buffer, stamped with one clock
		// read: a chunk goes out at one moment.
		topic, now := s.r.tables[t.name].p.Topic, time.Now()
		b := c.rows.bufs
		b.krs = slices.Grow(b.krs[:0], len(c.rows.recs))[:len(c.rows.recs)]
		krs := b.krs
		s.sent = append(s.sent, b)
		for i := range c.rows.recs {
			rec := &c.rows.recs[i]
			if _, changed := c.changed[string(rec.Key)]; changed {
				continue
			}
			krs[i] = kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value, Timestamp: now}
			if err := s.r.send(&krs[i]); err != nil {
				return err
			}
			n++
			bytes += int64(len(rec.Key) + len(rec.Value))
		}
		for _, f := range c.rows.failed {
			if _, changed := c.changed[f.key]; changed && f.key != "" {
				continue
			}
			if err := s.r.deadLetterRaw(ctx, s.r.tables[t.name], f.raw, f.err, []kgo.RecordHeader{
				{Key: "ferry.error.binlog.file", Value: []byte(c.rows.pos.File)},
				{Key: "ferry.error.binlog.pos", Value: []byte(strconv.FormatUint(c.rows.pos.Pos, 10))},
			}); err != nil {
				return err
			}
		}
		// Loaded rows count as records written (throughput), not against
		// the latency budget: they are not changes with a commit time.
		s.r.count(t.name, metrics.SnapshotRead, n)
		s.r.count(t.name, metrics.Records, n)
		s.r.count(t.name, metrics.Bytes, bytes)
		t.st.Rows += n
		if c.rng.last {
			t.st.Done = true
			t.st.After = nil
		} else {
			t.st.After = c.rng.hi
		}
		s.r.dirty = true
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

// rate is the table's load rate in rows/s since the load (re)started.
func (t *snapTable) rate() float64 {
	return float64(t.st.Rows-t.startRow) / max(time.Since(t.start).Seconds(), 0.001)
}

func (s *snapshotter) progress(t *snapTable) {
	total := max(t.estimate, t.st.Rows)
	rate := t.rate()
	s.r.m.SetProgress(t.name, t.st.Rows, total, rate)
	if t.bar != nil {
		if total > t.bar.GetMax64() {
			t.bar.ChangeMax64(total)
		}
		_ = t.bar.Set64(t.st.Rows)
	}
	if time.Since(t.lastLog) >= 10*time.Second || t.st.Done {
		t.lastLog = time.Now()
		eta := "-"
		if rate > 0 && total > t.st.Rows {
			eta = (time.Duration(float64(total-t.st.Rows)/rate) * time.Second).Round(time.Second).String()
		}
		s.r.log.Info("initial load", "table", t.name, "rows", t.st.Rows, "estimate", total, "rows_per_s", int64(rate), "eta", eta)
	}
}

func (s *snapshotter) finish(t *snapTable) {
	if t.bar != nil {
		_ = t.bar.Finish()
		fmt.Fprintln(os.Stderr)
	}
	s.r.m.SetProgress(t.name, t.st.Rows, t.st.Rows, t.rate())
	s.r.log.Info("initial load done", "table", t.name, "rows", t.st.Rows, "took", time.Since(t.start).Round(time.Millisecond).String())
	t.cancel()
	delete(s.tables, t.name)
	for i, n := range s.order {
		if n == t.name {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

// sqlConn opens a session for the load: UTC, utf8mb4.
func (s *snapshotter) sqlConn(ctx context.Context) (*client.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := binlog.Connect(cctx, s.r.cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.Execute("SET time_zone = '+00:00'"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// planner cuts a table into chunk ranges, ahead of the workers.
func (s *snapshotter) planner(ctx context.Context, t *snapTable, after [][]byte) {
	defer s.r.bg.Done()
	var c *client.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	send := func(r chunkRange) bool {
		select {
		case t.ranges <- r:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var keyCols []string
	var keyKinds []event.Kind
	var ints *intKeys
	first := true
	lo := after
	for ctx.Err() == nil {
		if c == nil {
			var err error
			if c, err = s.sqlConn(ctx); err != nil {
				c = nil
				if !sleep(ctx, time.Second) {
					return
				}
				continue
			}
		}
		var info *chunkRange
		if keyCols == nil {
			var err error
			var ti tableInfo
			ti, err = tableKey(c, t.db, t.tbl)
			keyCols, keyKinds = ti.keyCols, ti.keyKinds
			if err != nil {
				if isFatal(err) {
					send(chunkRange{err: err})
					return
				}
				c.Close()
				c = nil
				keyCols = nil
				continue
			}
			if first {
				first = false
				info = &chunkRange{keyCols: keyCols, keyKinds: keyKinds, estimate: ti.estimate}
			}
			if ints, err = denseIntKeys(c, t.db, t.tbl, keyCols, keyKinds, lo, ti.estimate, s.chunkSize); err != nil {
				c.Close()
				c = nil
				keyCols = nil
				continue
			}
		}
		var hi [][]byte
		var err error
		size := chunkRowCount(s.chunkSize, t.rowBytes.Load())
		if ints != nil {
			hi, err = ints.next(c, lo, size)
		} else {
			hi, err = boundary(c, t.db, t.tbl, keyCols, keyKinds, lo, size)
		}
		if err != nil {
			c.Close()
			c = nil
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		r := chunkRange{lo: lo, hi: hi, last: hi == nil, size: size}
		if info != nil {
			r.keyCols, r.keyKinds, r.estimate = info.keyCols, info.keyKinds, info.estimate
		}
		if !send(r) || r.last {
			return
		}
		lo = hi
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type fatalError struct{ error }

func isFatal(err error) bool {
	_, ok := err.(fatalError)
	return ok
}

// tableInfo is what the planner learns of a table before cutting it.
type tableInfo struct {
	keyCols  []string
	keyKinds []event.Kind
	estimate int64 // rows, the server's estimate
}

// tableKey finds the primary key columns (for the load's queries only; the
// events' columns come from the binlog) and the estimated row count.
func tableKey(c *client.Conn, db, tbl string) (tableInfo, error) {
	r, err := c.Execute("SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '" +
		mysql.Escape(db) + "' AND TABLE_NAME = '" + mysql.Escape(tbl) + "' AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX")
	if err != nil {
		return tableInfo{}, err
	}
	var cols []string
	for i := range r.Values {
		s := binlog.GetString(r, i, 0)
		cols = append(cols, s)
	}
	r.Close()
	if len(cols) == 0 {
		ex, err := c.Execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '" + mysql.Escape(db) + "' AND TABLE_NAME = '" + mysql.Escape(tbl) + "'")
		if err == nil {
			n, _ := ex.GetInt(0, 0)
			ex.Close()
			if n == 0 {
				return tableInfo{}, fatalError{fmt.Errorf("table %s.%s does not exist", db, tbl)}
			}
		}
		return tableInfo{}, fatalError{fmt.Errorf("table %s.%s has no primary key; the initial load reads it in primary key chunks: give it one, or set snapshot: \"no_data\"", db, tbl)}
	}
	r, err = c.Execute("SELECT " + colList(cols) + " FROM " + qname(db, tbl) + " LIMIT 0")
	if err != nil {
		return tableInfo{}, err
	}
	kinds := make([]event.Kind, len(cols))
	for i, f := range r.Fields {
		kinds[i] = event.ColumnFromField(f).Kind
	}
	r.Close()
	ti := tableInfo{keyCols: cols, keyKinds: kinds}
	if r, err = c.Execute("SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = '" + mysql.Escape(db) + "' AND TABLE_NAME = '" + mysql.Escape(tbl) + "'"); err == nil {
		ti.estimate, _ = r.GetInt(0, 0)
		r.Close()
	}
	return ti, nil
}

func qid(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func qname(db, tbl string) string { return qid(db) + "." + qid(tbl) }

func colList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = qid(c)
	}
	return strings.Join(q, ", ")
}

// literal renders a key value (text) as an SQL literal of its kind.
func literal(k event.Kind, v []byte) string {
	switch k {
	case event.KindInt, event.KindDecimal, event.KindFloat, event.KindDouble, event.KindYear:
		ok := len(v) > 0
		for _, b := range v {
			if !(b >= '0' && b <= '9' || b == '-' || b == '.' || b == 'e' || b == 'E' || b == '+') {
				ok = false
			}
		}
		if ok {
			return string(v)
		}
	case event.KindBytes, event.KindBits:
		return "X'" + hex.EncodeToString(v) + "'"
	}
	return "'" + mysql.Escape(string(v)) + "'"
}

func tuple(kinds []event.Kind, vals [][]byte) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = literal(kinds[i], v)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func keyText(vals [][]byte) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = string(v)
	}
	return strings.Join(parts, ",")
}

func textOf(v any) []byte {
	switch x := v.(type) {
	case nil:
		return nil
	case int64:
		return strconv.AppendInt(nil, x, 10)
	case uint64:
		return strconv.AppendUint(nil, x, 10)
	case float64:
		return strconv.AppendFloat(nil, x, 'g', -1, 64)
	case []byte:
		return append([]byte(nil), x...)
	case string:
		return []byte(x)
	}
	return []byte(fmt.Sprint(v))
}

// intKeys cuts a table whose primary key is one integer column into
// chunks by arithmetic: (lo, lo+chunkSize] holds at most chunkSize rows, so
// no chunk is too big, and the bounds cost the server no scan. (InnoDB's
// primary key is its clustered index: boundary's "index-only" read walks
// the rows themselves, a second read of the whole table.) Flink CDC cuts
// such keys the same way. It is used only where the keys fill their range
// densely enough that chunks stay at least a quarter full; sparser keys
// are cut by boundary.
type intKeys struct {
	db, tbl, col string
	min, max     int64 // the smallest key, the largest when last read
}

// denseIntKeys returns the arithmetic cutter for a table whose key is one
// integer column filled densely, or nil.
func denseIntKeys(c *client.Conn, db, tbl string, keyCols []string, kinds []event.Kind, lo [][]byte, estimate int64, size int) (*intKeys, error) {
	if len(keyCols) != 1 || kinds[0] != event.KindInt {
		return nil, nil
	}
	k := &intKeys{db: db, tbl: tbl, col: keyCols[0]}
	q := "SELECT MIN(" + qid(k.col) + "), MAX(" + qid(k.col) + ") FROM " + qname(db, tbl)
	if lo != nil {
		q += " WHERE " + qid(k.col) + " > " + literal(event.KindInt, lo[0])
	}
	r, err := c.Execute(q)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	minKey, err1 := strconv.ParseInt(string(textOf(r.Values[0][0].Value())), 10, 64)
	maxKey, err2 := strconv.ParseInt(string(textOf(r.Values[0][1].Value())), 10, 64)
	if err1 != nil || err2 != nil || minKey == math.MinInt64 {
		return nil, nil // empty, or keys at int64's ends: boundary copes
	}
	if span := uint64(maxKey - minKey); span > 4*uint64(max(estimate, 0))+uint64(size) {
		return nil, nil
	}
	k.min, k.max = minKey, maxKey
	return k, nil
}

// next returns the bound of the chunk of up to size keys after lo, or nil
// for the last chunk: the one that holds the largest key as read now, so
// rows added beyond the first MAX during the load get chunks of their own.
func (k *intKeys) next(c *client.Conn, lo [][]byte, size int) ([][]byte, error) {
	cur := k.min - 1
	if lo != nil {
		var err error
		if cur, err = strconv.ParseInt(string(lo[0]), 10, 64); err != nil {
			return nil, fmt.Errorf("chunk bound %q: %v", lo[0], err)
		}
	}
	if cur > math.MaxInt64-int64(size) {
		return nil, nil
	}
	hi := cur + int64(size)
	if hi >= k.max {
		r, err := c.Execute("SELECT MAX(" + qid(k.col) + ") FROM " + qname(k.db, k.tbl))
		if err != nil {
			return nil, err
		}
		v := textOf(r.Values[0][0].Value())
		r.Close()
		if m, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			k.max = m
		}
		if hi >= k.max {
			return nil, nil
		}
	}
	return [][]byte{strconv.AppendInt(nil, hi, 10)}, nil
}

// boundary returns the key of the last row of the chunk after lo, or nil
// when no more than n rows remain (the last chunk).
func boundary(c *client.Conn, db, tbl string, keyCols []string, kinds []event.Kind, lo [][]byte, n int) ([][]byte, error) {
	q := "SELECT " + colList(keyCols) + " FROM " + qname(db, tbl)
	if lo != nil {
		q += " WHERE (" + colList(keyCols) + ") > " + tuple(kinds, lo)
	}
	// The n-th row and the one after it: where exactly n rows remain, the
	// last chunk holds them all rather than leaving an empty last chunk,
	// which would have no row to mark last_in_data_collection.
	q += " ORDER BY " + colList(keyCols) + " LIMIT 2 OFFSET " + strconv.Itoa(n-1)
	r, err := c.Execute(q)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if len(r.Values) < 2 {
		return nil, nil
	}
	out := make([][]byte, len(keyCols))
	for i := range keyCols {
		out[i] = textOf(r.Values[0][i].Value())
	}
	return out, nil
}

// worker reads chunks between their watermarks.
func (s *snapshotter) worker(ctx context.Context, slot int) {
	defer s.r.bg.Done()
	var c *client.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	slotName := s.r.job.ID + "/" + strconv.Itoa(slot)
	for {
		var ch *chunk
		select {
		case <-ctx.Done():
			return
		case ch = <-s.work:
		}
		if c == nil {
			var err error
			if c, err = s.sqlConn(ctx); err != nil {
				c = nil
				s.deliver(ctx, chunkResult{c: ch, err: err})
				continue
			}
		}
		var rows *chunkRows
		var err error
		rows, c, err = s.readChunk(ctx, c, slotName, ch)
		s.deliver(ctx, chunkResult{c: ch, rows: rows, err: err})
	}
}

func (s *snapshotter) deliver(ctx context.Context, res chunkResult) {
	select {
	case s.results <- res:
	case <-ctx.Done():
	}
}

// errChunkFull stops a chunk's SELECT at the row after the one that took
// its records past twice chunkBytes.
var errChunkFull = errors.New("chunk full")

// readChunk reads a chunk between its watermarks on c. It returns the
// connection to read the next chunk on: c; a new one when the chunk was cut
// short, its result left unread on c; or nil when c failed. A chunk whose
// records pass twice chunkBytes (rows much larger than those before them)
// is cut after the row that passed it, when another follows: the rows read
// so far are the chunk, and out.cut is where the rest begins.
func (s *snapshotter) readChunk(ctx context.Context, c *client.Conn, slot string, ch *chunk) (out *chunkRows, next *client.Conn, err error) {
	defer func() {
		if err != nil {
			if c != nil {
				c.Close()
			}
			next = nil
		}
	}()
	t := ch.t
	mark := "INSERT INTO " + qname(s.r.hbDB, watermarkTable) + " (slot, token) VALUES ('" + mysql.Escape(slot) + "', '%s') ON DUPLICATE KEY UPDATE token = VALUES(token)"
	if _, err := c.Execute(fmt.Sprintf(mark, ch.lw)); err != nil {
		return nil, nil, err
	}
	// The rows' source block names the binlog position at which the
	// chunk's window opened, as Debezium's snapshot rows name theirs.
	pos, err := binlog.MasterStatusConn(c, s.r.srv.Flavor)
	if err != nil {
		return nil, nil, err
	}
	q := "SELECT * FROM " + qname(t.db, t.tbl)
	var conds []string
	if ch.rng.lo != nil {
		conds = append(conds, "("+colList(t.keyCols)+") > "+tuple(t.keyKinds, ch.rng.lo))
	}
	if ch.rng.hi != nil {
		conds = append(conds, "("+colList(t.keyCols)+") <= "+tuple(t.keyKinds, ch.rng.hi))
	}
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY " + colList(t.keyCols)
	marker := event.SnapshotTrue
	if t.st.Incremental {
		marker = event.SnapshotIncremental
	}
	enc := &chunkEncoder{
		bufs: s.bufs.get(),
		t:    t,
		size: ch.rng.size,
		src:  event.Source{Name: s.r.job.CDC.TopicPrefix, Time: time.Now(), File: pos.File, Pos: pos.Pos},
		// A whole-table load marks the table's first and last rows.
		first: ch.rng.lo == nil && !t.st.Incremental,
		last:  ch.rng.last && !t.st.Incremental,
	}
	// A streaming SELECT: each row is encoded as it arrives, in a packet
	// buffer that is reused, so no result set is held.
	var res mysql.Result
	var full, cut [][]byte // the key of the row that filled the chunk; of the chunk's last row once cut
	err = c.ExecuteSelectStreaming(q, &res, func(row []mysql.FieldValue) error {
		if full != nil {
			// Cut before the next row, not at the full one: a cut after
			// the range's last row would leave an empty last chunk.
			cut = full
			return errChunkFull
		}
		if enc.tbl == nil {
			enc.begin(res.Fields, marker)
		}
		enc.add(row)
		if int64(len(enc.bufs.arena)) > 2*chunkBytes {
			full = make([][]byte, len(enc.tbl.Key))
			for i, k := range enc.tbl.Key {
				full[i] = textOf(row[k].Value())
			}
		}
		return nil
	}, nil)
	if cut != nil {
		// The rest of the result is still on c: the high watermark goes
		// on a new connection.
		c.Close()
		if c, err = s.sqlConn(ctx); err != nil {
			c = nil
		}
		enc.last = false
	}
	if err != nil {
		s.bufs.Put(enc.bufs)
		return nil, nil, err
	}
	if _, err := c.Execute(fmt.Sprintf(mark, ch.hw)); err != nil {
		s.bufs.Put(enc.bufs)
		return nil, nil, err
	}
	out = enc.finish()
	out.pos, out.cut = pos, cut
	return out, c, nil
}

// chunkEncoder turns a chunk's rows into records as they stream in. Every
// record goes into one arena, sliced up at the end; the arena and the
// slices come from the snapshotter's pool, so a chunk costs no allocation
// per row and, once the pool has warmed, hardly any per chunk.
type chunkEncoder struct {
	bufs        *chunkBufs
	t           *snapTable
	size        int // rows expected, to size the arena
	src         event.Source
	first, last bool
	tbl         *event.Table
	row         []any
	failed      []failedRow
	tails       [3][]byte // the envelope's tail: any row, the first, the last
	lastTail    []byte    // the tail of the row added last; nil if it failed
}

// begin learns the table's shape from the result's fields and formats the
// tails that the chunk's rows share.
func (e *chunkEncoder) begin(fields []*mysql.Field, marker string) {
	e.tbl = &event.Table{DB: e.t.db, Name: e.t.tbl}
	for _, f := range fields {
		e.tbl.Columns = append(e.tbl.Columns, event.ColumnFromField(f))
	}
	for _, k := range e.t.keyCols {
		for i, col := range e.tbl.Columns {
			if strings.EqualFold(col.Name, k) {
				e.tbl.Key = append(e.tbl.Key, i)
			}
		}
	}
	e.row = make([]any, len(fields))
	now := time.Now()
	for k, m := range []string{marker, "first_in_data_collection", "last_in_data_collection"} {
		e.src.Snapshot = m
		e.tails[k] = e.tbl.Tail(event.OpRead, &e.src, now)
	}
}

// add encodes one row; a row that cannot be converted becomes a dead
// letter.
func (e *chunkEncoder) add(fields []mysql.FieldValue) {
	for j := range e.row {
		e.row[j] = &fields[j] // a pointer: no value is boxed
	}
	b := e.bufs
	tail := e.tails[0]
	if e.first && len(b.offs) == 0 && len(e.failed) == 0 {
		tail = e.tails[1]
	}
	e.lastTail = nil
	start := len(b.arena)
	var err error
	b.arena, err = e.tbl.AppendKey(b.arena, e.row)
	keyEnd := len(b.arena)
	keyOK := err == nil
	if keyOK {
		b.arena, err = e.tbl.AppendWithTail(b.arena, e.row, tail)
	}
	if err != nil {
		// The key, when it could be written whole, for the window check.
		key := ""
		if keyOK {
			key = string(b.arena[start:keyEnd])
		}
		after := make([]any, len(fields))
		for j := range fields {
			after[j] = fields[j].Value()
		}
		e.failed = append(e.failed, failedRow{key: key, raw: mustJSON(map[string]any{"op": "r", "after": after}), err: fmt.Errorf("initial load: %w", err)})
		b.arena = b.arena[:start]
		return
	}
	b.offs = append(b.offs, [3]int{start, keyEnd, len(b.arena)})
	e.lastTail = tail
	if len(b.offs) == 1 {
		// Size the arena for the whole chunk from its first row.
		b.arena = slices.Grow(b.arena, int(min(int64(len(b.arena)+64)*int64(max(e.size, 1)), chunkBytes)*11/10)-len(b.arena))
		b.offs = slices.Grow(b.offs, e.size)
	}
}

// finish marks the table's last row, when the chunk ends the table, and
// slices the arena into records.
func (e *chunkEncoder) finish() *chunkRows {
	b := e.bufs
	out := &chunkRows{bufs: b, failed: e.failed}
	if e.last && e.lastTail != nil {
		// The tail is the value's suffix: swap the last row's for "last".
		o := &b.offs[len(b.offs)-1]
		b.arena = append(b.arena[:o[2]-len(e.lastTail)], e.tails[2]...)
		o[2] = len(b.arena)
	}
	b.recs = slices.Grow(b.recs[:0], len(b.offs))[:len(b.offs)]
	for i, o := range b.offs {
		b.recs[i] = event.Record{Key: b.arena[o[0]:o[1]:o[1]], Value: b.arena[o[1]:o[2]:o[2]]}
	}
	out.recs = b.recs
	return out
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
