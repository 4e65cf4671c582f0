package cdc

// The chunk planner of the initial load: each table's primary key range cut
// into chunks (by arithmetic for a dense integer key, else by an index walk),
// sized by the bytes its rows take.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/cdc/event"
)

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

// sqlConn opens a session for the load: UTC, utf8mb4.
func (s *snapshotter) sqlConn(ctx context.Context) (*client.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := binlog.Connect(cctx, s.cfg)
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
	defer s.bg.Done()
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
	var estimate int64
	known, sent := false, false // the key; a range (the first carries the table's info)
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
		if !known {
			ti, err := tableKey(c, t.db, t.tbl, t.declared)
			if err != nil {
				if isFatal(err) {
					send(chunkRange{err: err})
					return
				}
				c.Close()
				c = nil
				if !sleep(ctx, time.Second) {
					return
				}
				continue
			}
			keyCols, keyKinds, estimate, known = ti.keyCols, ti.keyKinds, ti.estimate, true
			switch {
			case len(keyCols) == 0 && sent:
				send(chunkRange{err: fatalError{fmt.Errorf("table %s.%s lost its key during the load", t.db, t.tbl)}})
				return
			case len(keyCols) == 0:
				// No key: the table is one chunk, read whole.
				send(chunkRange{info: true, last: true, size: s.chunkSize, estimate: estimate})
				return
			}
			if ints, err = denseIntKeys(c, t.db, t.tbl, keyCols, keyKinds, lo, ti.estimate, s.chunkSize); err != nil {
				c.Close()
				c = nil
				known = false
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
		if !sent {
			r.info, r.keyCols, r.keyKinds, r.estimate = true, keyCols, keyKinds, estimate
		}
		if !send(r) || r.last {
			return
		}
		sent = true
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

func isFatal(err error) bool { return errors.As(err, new(fatalError)) }

// tableInfo is what the planner learns of a table before cutting it.
type tableInfo struct {
	keyCols  []string
	keyKinds []event.Kind
	estimate int64 // rows, the server's estimate
}

// tableKey finds the load's key columns, the declared key or else the
// events' key (binlog.KeyColumns), by which a loaded row and a change of it
// are told apart, their kinds and the estimated row count. A table with no
// key at all has no key columns: it is read whole (see snapshotter.emit).
// A table that cannot be loaded as it is (no such table or column, no
// privilege) is a fatalError.
func tableKey(c *client.Conn, db, tbl string, declared []string) (tableInfo, error) {
	cols := declared
	if len(cols) == 0 {
		var err error
		if cols, err = binlog.KeyColumns(c, db, tbl); err != nil {
			return tableInfo{}, err
		}
	}
	if len(cols) == 0 {
		ex, err := c.Execute("SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = '" + mysql.Escape(db) + "' AND TABLE_NAME = '" + mysql.Escape(tbl) + "'")
		if err != nil {
			return tableInfo{}, err
		}
		defer ex.Close()
		if len(ex.Values) == 0 {
			return tableInfo{}, fatalError{fmt.Errorf("table %s.%s does not exist, or the account has no privilege on it", db, tbl)}
		}
		n, _ := ex.GetInt(0, 0)
		return tableInfo{estimate: n}, nil
	}
	r, err := c.Execute("SELECT " + colList(cols) + " FROM " + qname(db, tbl) + " LIMIT 0")
	if err != nil {
		return tableInfo{}, tableFault(err)
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

// tableFault makes the server's refusals that only a change to the table,
// the definitions or the account fixes fatal to the table's load: no such
// table or column, no privilege on it.
func tableFault(err error) error {
	var me *mysql.MyError
	if errors.As(err, &me) {
		switch me.Code {
		case mysql.ER_NO_SUCH_TABLE, mysql.ER_BAD_FIELD_ERROR, mysql.ER_TABLEACCESS_DENIED_ERROR, mysql.ER_COLUMNACCESS_DENIED_ERROR:
			return fatalError{err}
		}
	}
	return err
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
