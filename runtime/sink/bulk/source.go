// Package bulk reads a sink's source table in consistent snapshots, chunk
// by chunk of its primary key, for `ferry load` (copy the table into the
// target at the snapshot's binlog position) and `ferry verify` (compare
// the two at a position).
package bulk

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/cdc/event"
	"github.com/ferry-pipelines/ferry/runtime/sink"
)

// Snapshot is a source connection inside a consistent snapshot
// (REPEATABLE READ, START TRANSACTION WITH CONSISTENT SNAPSHOT), with the
// binlog position the snapshot stands at: it holds every transaction
// before the position and none after it.
type Snapshot struct {
	c       *client.Conn
	Pos     binlog.Position
	Version sink.Version
}

// Close ends the snapshot.
func (s *Snapshot) Close() { s.c.Close() }

// OpenSnapshots opens n connections, each in a consistent snapshot with
// its exact binlog position.
//
// MariaDB reports the position of a connection's snapshot itself
// (binlog_snapshot_file and binlog_snapshot_position), so no lock is
// taken and each connection has its own position. MySQL does not: there
// the n snapshots are started under one FLUSH TABLES WITH READ LOCK,
// held only while they start and SHOW MASTER STATUS runs (the account
// needs RELOAD), so all share one position.
func OpenSnapshots(ctx context.Context, cfg binlog.Config, n int) ([]*Snapshot, error) {
	var out []*Snapshot
	fail := func(err error) ([]*Snapshot, error) {
		for _, s := range out {
			s.Close()
		}
		return nil, err
	}
	for i := 0; i < n; i++ {
		c, err := binlog.Connect(ctx, cfg)
		if err != nil {
			return fail(fmt.Errorf("MySQL at %s: %w", cfg.Addr, err))
		}
		out = append(out, &Snapshot{c: c})
		for _, st := range []string{"SET SESSION time_zone = '+00:00'", "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"} {
			if _, err := c.Execute(st); err != nil {
				return fail(fmt.Errorf("MySQL: %s: %w", st, err))
			}
		}
	}
	if ok, err := hasSnapshotStatus(out[0].c); err != nil {
		return fail(err)
	} else if ok {
		for _, s := range out {
			if _, err := s.c.Execute("START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
				return fail(fmt.Errorf("MySQL: start a consistent snapshot: %w", err))
			}
			if s.Pos, err = snapshotStatus(s.c); err != nil {
				return fail(err)
			}
		}
	} else {
		if err := lockedSnapshots(out); err != nil {
			return fail(err)
		}
	}
	for _, s := range out {
		v, err := sink.PositionVersion(s.Pos.File, s.Pos.Pos)
		if err != nil {
			return fail(err)
		}
		s.Version = v
	}
	return out, nil
}

func hasSnapshotStatus(c *client.Conn) (bool, error) {
	r, err := c.Execute("SHOW STATUS LIKE 'binlog_snapshot_file'")
	if err != nil {
		return false, fmt.Errorf("MySQL: SHOW STATUS: %w", err)
	}
	defer r.Close()
	return r.RowNumber() == 1, nil
}

// snapshotStatus reads MariaDB's position of the connection's snapshot.
func snapshotStatus(c *client.Conn) (binlog.Position, error) {
	r, err := c.Execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return binlog.Position{}, fmt.Errorf("MySQL: binlog_snapshot_position: %w", err)
	}
	defer r.Close()
	var p binlog.Position
	for i := 0; i < r.RowNumber(); i++ {
		name, _ := r.GetString(i, 0)
		val, _ := r.GetString(i, 1)
		switch strings.ToLower(name) {
		case "binlog_snapshot_file":
			p.File = strings.Clone(val)
		case "binlog_snapshot_position":
			p.Pos, _ = strconv.ParseUint(val, 10, 64)
		}
	}
	if p.File == "" {
		return p, errors.New("MySQL: the server reports no binlog_snapshot_file: is the binlog on?")
	}
	return p, nil
}

// lockedSnapshots starts every snapshot under one global read lock.
func lockedSnapshots(ss []*Snapshot) error {
	lock := ss[0].c
	if _, err := lock.Execute("FLUSH TABLES WITH READ LOCK"); err != nil {
		return fmt.Errorf("MySQL: FLUSH TABLES WITH READ LOCK (to record the snapshot's binlog position; needs RELOAD): %w", err)
	}
	defer lock.Execute("UNLOCK TABLES") //nolint:errcheck // also released when the snapshot commits
	for _, s := range ss {
		if _, err := s.c.Execute("START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
			return fmt.Errorf("MySQL: start a consistent snapshot: %w", err)
		}
	}
	pos, err := binlog.MasterStatusConn(lock, mysql.MySQLFlavor)
	if err != nil {
		return err
	}
	for _, s := range ss {
		s.Pos = pos
	}
	return nil
}

// Chunk is a range of primary key values: after After (exclusive; nil:
// from the first key) up to Last (inclusive; nil: to the end), as MySQL
// values and as PostgreSQL text.
type Chunk struct {
	After, Last     []any
	AfterPG, LastPG []*string
}

// Chunks cuts the table into ranges of about size rows, by primary key,
// with index-only queries on c (outside any snapshot: the ranges are
// fixed, the rows in them are read later).
func Chunks(c *client.Conn, t *sink.Table, size int) ([]Chunk, error) {
	keys := keyColumns(t)
	db, table, _ := strings.Cut(t.Source, ".")
	from := quoteMy(db) + "." + quoteMy(table)
	var out []Chunk
	var after []any
	var afterPG []*string
	for {
		q := "SELECT " + keys + " FROM " + from
		var args []any
		if after != nil {
			q += " WHERE (" + keys + ") > (" + placeholders(len(after)) + ")"
			args = after
		}
		q += " ORDER BY " + keys + " LIMIT 1 OFFSET " + strconv.Itoa(size-1)
		r, err := c.Execute(q, args...)
		if err != nil {
			return nil, fmt.Errorf("MySQL: chunk %s: %w", t.Source, err)
		}
		if r.RowNumber() == 0 {
			r.Close()
			return append(out, Chunk{After: after, AfterPG: afterPG}), nil
		}
		last := rowValues(r, 0)
		lastPG, err := keyText(t, r, 0)
		r.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, Chunk{After: after, Last: last, AfterPG: afterPG, LastPG: lastPG})
		after, afterPG = last, lastPG
	}
}

// keyText turns a row of key values into the target's text.
func keyText(t *sink.Table, r *mysql.Result, row int) ([]*string, error) {
	out := make([]*string, len(t.Key))
	var buf []byte
	for j, k := range t.Key {
		c := event.ColumnFromField(r.Fields[j])
		c.RawYears = t.RawYears
		var err error
		if buf, err = event.AppendValue(buf[:0], &c, r.Values[row][j].Value()); err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t.Source, t.Columns[k].Source, err)
		}
		if out[j], err = t.Columns[k].Text(buf); err != nil {
			return nil, fmt.Errorf("%s: %w", t.Source, err)
		}
	}
	return out, nil
}

// Rows reads a chunk's rows in the snapshot as the sink writes them: each
// value turned into its Debezium value and back into PostgreSQL's text,
// exactly as the stream's events are.
func (s *Snapshot) Rows(t *sink.Table, ch Chunk) ([]sink.Row, error) {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = quoteMy(c.Source)
	}
	db, table, _ := strings.Cut(t.Source, ".")
	keys := keyColumns(t)
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + quoteMy(db) + "." + quoteMy(table)
	var where []string
	var args []any
	if ch.After != nil {
		where = append(where, "("+keys+") > ("+placeholders(len(ch.After))+")")
		args = append(args, ch.After...)
	}
	if ch.Last != nil {
		where = append(where, "("+keys+") <= ("+placeholders(len(ch.Last))+")")
		args = append(args, ch.Last...)
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY " + keys
	r, err := s.c.Execute(q, args...)
	if err != nil {
		return nil, fmt.Errorf("MySQL: read %s: %w", t.Source, err)
	}
	defer r.Close()
	evCols := make([]event.Column, len(r.Fields))
	for j := range r.Fields {
		evCols[j] = event.ColumnFromField(r.Fields[j])
		evCols[j].RawYears = t.RawYears
	}
	rows := make([]sink.Row, r.RowNumber())
	var buf []byte
	for i := range rows {
		vals := make([]*string, len(t.Columns))
		for j := range t.Columns {
			buf, err = event.AppendValue(buf[:0], &evCols[j], r.Values[i][j].Value())
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", t.Source, t.Columns[j].Source, err)
			}
			if vals[j], err = t.Columns[j].Text(buf); err != nil {
				return nil, fmt.Errorf("%s: %w", t.Source, err)
			}
		}
		rows[i] = sink.Row{Values: vals, Version: s.Version}
	}
	return rows, nil
}

func keyColumns(t *sink.Table) string {
	keys := make([]string, len(t.Key))
	for i, k := range t.Key {
		keys[i] = quoteMy(t.Columns[k].Source)
	}
	return strings.Join(keys, ", ")
}

func quoteMy(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// rowValues copies a result row's values (go-mysql reuses its buffers).
func rowValues(r *mysql.Result, row int) []any {
	out := make([]any, len(r.Values[row]))
	for j, v := range r.Values[row] {
		switch x := v.Value().(type) {
		case []byte:
			out[j] = append([]byte(nil), x...)
		case string:
			out[j] = strings.Clone(x)
		default:
			out[j] = x
		}
	}
	return out
}
