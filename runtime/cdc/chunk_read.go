package cdc

// The chunk reader of the initial load: a worker reads a chunk between its
// two watermarks, a streaming SELECT encoding each row into Debezium records
// as it arrives.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/cdc/event"
)

// worker reads chunks between their watermarks.
func (s *snapshotter) worker(ctx context.Context, slot int) {
	defer s.bg.Done()
	var c *client.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	slotName := s.jobID + "/" + strconv.Itoa(slot)
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

// wholeTableBytes is the most record bytes the load reads of a table
// without a key, which it reads whole. A variable for tests.
var wholeTableBytes = 4 * chunkBytes

// testHookBeforeSelect, set by tests only, runs between a chunk's
// position and its SELECT: the changes it makes come after the one and
// before the other.
var testHookBeforeSelect func(table string)

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
	mark := "INSERT INTO " + qname(s.hbDB, watermarkTable) + " (slot, token) VALUES ('" + mysql.Escape(slot) + "', '%s') ON DUPLICATE KEY UPDATE token = VALUES(token)"
	if _, err := c.Execute(fmt.Sprintf(mark, ch.lw)); err != nil {
		return nil, nil, err
	}
	// The rows' source block names the binlog position at which the
	// chunk's window opened, as Debezium's snapshot rows name theirs.
	pos, err := binlog.MasterStatusConn(c, s.flavor)
	if err != nil {
		return nil, nil, err
	}
	if testHookBeforeSelect != nil {
		testHookBeforeSelect(t.name)
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
	whole := len(t.keyCols) == 0
	if !whole {
		q += " ORDER BY " + colList(t.keyCols)
	}
	marker := event.SnapshotTrue
	if t.st.Incremental {
		marker = event.SnapshotIncremental
	}
	enc := &chunkEncoder{
		bufs:     s.bufs.get(),
		t:        t,
		size:     ch.rng.size,
		src:      event.Source{Name: s.topicPrefix, Time: time.Now(), File: pos.File, Pos: pos.Pos},
		rawYears: s.cfg.RawYears,
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
		if whole {
			if int64(len(enc.bufs.arena)) > wholeTableBytes {
				return fatalError{fmt.Errorf("table %s.%s has no key and its records take more than %d MiB: a table without a key is read whole, in memory; %s",
					t.db, t.tbl, wholeTableBytes>>20, nameAKey)}
			}
			return nil
		}
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
	rawYears    bool // see binlog.Config.RawYears
	row         []any
	failed      []failedRow
	tails       [3][]byte           // the envelope's tail: any row, the first, the last
	lastTail    []byte              // the tail of the row added last; nil if it failed
	contents    map[string]struct{} // rowSum of each row, when the table has no key
}

// begin learns the table's shape from the result's fields and formats the
// tails that the chunk's rows share.
func (e *chunkEncoder) begin(fields []*mysql.Field, marker string) {
	e.tbl = &event.Table{DB: e.t.db, Name: e.t.tbl}
	for _, f := range fields {
		c := event.ColumnFromField(f)
		c.RawYears = e.rawYears
		e.tbl.Columns = append(e.tbl.Columns, c)
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
	if len(e.tbl.Key) == 0 {
		if sum, ok := rowSum(e.tbl, e.row); ok {
			if e.contents == nil {
				e.contents = map[string]struct{}{}
			}
			e.contents[sum] = struct{}{}
		}
	}
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
	out := &chunkRows{bufs: b, failed: e.failed, contents: e.contents}
	if e.last && e.lastTail != nil {
		// The tail is the value's suffix: swap the last row's for "last".
		o := &b.offs[len(b.offs)-1]
		b.arena = append(b.arena[:o[2]-len(e.lastTail)], e.tails[2]...)
		o[2] = len(b.arena)
	}
	b.recs = slices.Grow(b.recs[:0], len(b.offs))[:len(b.offs)]
	for i, o := range b.offs {
		b.recs[i] = event.Record{Value: b.arena[o[1]:o[2]:o[2]]}
		if o[1] > o[0] { // else the table has no key: a null key
			b.recs[i].Key = b.arena[o[0]:o[1]:o[1]]
		}
	}
	out.recs = b.recs
	return out
}
