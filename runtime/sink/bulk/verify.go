package bulk

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/sink"
)

// Diff is one chunk whose rows differ, with the span of its differing keys
// (in the source's key order; keys only in the target come last).
type Diff struct {
	First, Last string // the first and last differing key
	Changed     int    // keys in both with other values
	Missing     int    // keys in the source, not in the target
	Extra       int    // keys in the target, not in the source
	Chunk       Chunk
}

// VerifyResult is what a verify found.
type VerifyResult struct {
	SourceRows, TargetRows int64
	Chunks                 int
	At                     binlog.Position // the newest snapshot position compared at
	Diffs                  []Diff          // in key order
}

// WaitApplied waits until the target holds every change before pos.
type WaitApplied func(ctx context.Context, pos binlog.Position) error

// Verify compares the source table with the sink's target, chunk by
// primary key chunk, while both are live:
//
//  1. each worker reads its chunks in a consistent snapshot at position P
//     (see OpenSnapshots);
//  2. before comparing, it waits until the sink has applied every change
//     before P (wait: the CDC checkpoint is past P, and the sink's offsets
//     in the target have reached the topic's end as it was then);
//  3. it compares only what P fixes: keys whose version in the target is
//     newer than P (changed or deleted after P) are left out on both
//     sides. Source values are turned into the target's types and
//     rendered by PostgreSQL, so both sides are compared in one form, by
//     a SHA-256 checksum per chunk and, where the checksums differ, row
//     by row.
//
// Chunks that differ are compared once more with new snapshots, so a
// difference that a change in flight explains is not reported.
func Verify(ctx context.Context, t *sink.Table, cfg binlog.Config, target Connect, wait WaitApplied, o Options) (VerifyResult, error) {
	o = o.withDefaults()
	var res VerifyResult
	chunks, err := chunksOf(ctx, cfg, t, o)
	if err != nil {
		return res, err
	}
	res.Chunks = len(chunks)
	diffs, counts, at, err := compareChunks(ctx, t, cfg, target, wait, chunks, o)
	if err != nil {
		return res, err
	}
	res.At, res.SourceRows, res.TargetRows = at, counts[0], counts[1]
	if len(diffs) > 0 {
		again := make([]Chunk, len(diffs))
		for i, d := range diffs {
			again[i] = d.Chunk
		}
		if diffs, _, _, err = compareChunks(ctx, t, cfg, target, wait, again, o); err != nil {
			return res, err
		}
	}
	res.Diffs = diffs
	return res, nil
}

// compareChunks compares chunks in new snapshots and returns the diffs in
// chunk order, the rows counted on each side and the newest position.
func compareChunks(ctx context.Context, t *sink.Table, cfg binlog.Config, target Connect, wait WaitApplied, chunks []Chunk, o Options) ([]Diff, [2]int64, binlog.Position, error) {
	var counts [2]int64
	snaps, err := OpenSnapshots(ctx, cfg, min(o.Parallelism, len(chunks)))
	if err != nil {
		return nil, counts, binlog.Position{}, err
	}
	defer func() {
		for _, s := range snaps {
			s.Close()
		}
	}()
	at := snaps[0].Pos
	for _, s := range snaps {
		if s.Pos.Compare(at) > 0 {
			at = s.Pos
		}
	}
	if err := wait(ctx, at); err != nil {
		return nil, counts, at, err
	}
	var mu sync.Mutex
	found := make([]*Diff, len(chunks))
	err = forChunks(ctx, len(chunks), snaps, target, o, func(ctx context.Context, s *Snapshot, pg *pgx.Conn, i int) error {
		d, n, err := compareChunk(ctx, t, s, pg, chunks[i])
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		counts[0] += n[0]
		counts[1] += n[1]
		found[i] = d
		return nil
	})
	if err != nil {
		return nil, counts, at, err
	}
	var diffs []Diff
	for _, d := range found {
		if d != nil {
			diffs = append(diffs, *d)
		}
	}
	return diffs, counts, at, nil
}

// compareChunk compares one chunk; nil when equal.
func compareChunk(ctx context.Context, t *sink.Table, s *Snapshot, pg *pgx.Conn, ch Chunk) (*Diff, [2]int64, error) {
	var n [2]int64
	rows, err := s.Rows(t, ch)
	if err != nil {
		return nil, n, err
	}
	src, order, err := canonical(ctx, t, pg, rows)
	if err != nil {
		return nil, n, err
	}
	dst, err := targetRows(ctx, t, pg, ch)
	if err != nil {
		return nil, n, err
	}
	newer, err := changedAfter(ctx, t, pg, ch, s.Version)
	if err != nil {
		return nil, n, err
	}
	for k := range newer {
		delete(src, k)
		delete(dst, k)
	}
	n[0], n[1] = int64(len(src)), int64(len(dst))
	if checksum(src) == checksum(dst) {
		return nil, n, nil
	}
	d := &Diff{Chunk: ch}
	var keys []string
	for _, k := range order {
		v, ok := src[k]
		if !ok {
			continue
		}
		w, ok := dst[k]
		switch {
		case !ok:
			d.Missing++
		case v != w:
			d.Changed++
		default:
			continue
		}
		keys = append(keys, k)
	}
	var extra []string
	for k := range dst {
		if _, ok := src[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	d.Extra = len(extra)
	keys = append(keys, extra...)
	d.First, d.Last = keys[0], keys[len(keys)-1]
	return d, n, nil
}

// checksum is a SHA-256 over a side's rows in key order.
func checksum(rows map[string]string) [32]byte {
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(rows[k]))
		h.Write([]byte{0})
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// canonical has PostgreSQL cast the source rows' values to the target's
// types and render them, as it renders the target's: key text -> row
// text, and the keys in source order.
func canonical(ctx context.Context, t *sink.Table, pg *pgx.Conn, rows []sink.Row) (map[string]string, []string, error) {
	args := make([]any, len(t.Columns))
	sel := make([]string, len(t.Columns))
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		col := make([]*string, len(rows))
		for r := range rows {
			col[r] = rows[r].Values[i]
		}
		args[i] = col
		names[i] = fmt.Sprintf("c%d", i)
		sel[i] = fmt.Sprintf("u.c%d::%s::text", i, c.PG)
		args[i] = col
	}
	ph := make([]string, len(t.Columns))
	for i := range ph {
		ph[i] = fmt.Sprintf("$%d::text[]", i+1)
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM unnest(" + strings.Join(ph, ", ") + ") WITH ORDINALITY AS u(" + strings.Join(names, ", ") + ", n) ORDER BY u.n"
	return collect(ctx, t, pg, q, args, true)
}

// targetRows reads the target's rows of a chunk.
func targetRows(ctx context.Context, t *sink.Table, pg *pgx.Conn, ch Chunk) (map[string]string, error) {
	sel := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		sel[i] = pgx.Identifier{c.Target}.Sanitize() + "::text"
	}
	where, args := rangeWhere(t, ch)
	m, _, err := collect(ctx, t, pg, "SELECT "+strings.Join(sel, ", ")+" FROM "+t.Ident()+where, args, false)
	return m, err
}

// changedAfter returns the keys of a chunk whose version in the target is
// newer than v: changed or deleted after the snapshot.
func changedAfter(ctx context.Context, t *sink.Table, pg *pgx.Conn, ch Chunk, v sink.Version) (map[string]bool, error) {
	sel := make([]string, len(t.Key))
	for i, k := range t.Key {
		sel[i] = pgx.Identifier{t.Columns[k].Target}.Sanitize() + "::text"
	}
	where, args := rangeWhere(t, ch)
	if where == "" {
		where = " WHERE true"
	}
	args = append(args, v.String())
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + t.VersionsIdent() + where + fmt.Sprintf(" AND %s > $%d::numeric", pgx.Identifier{sink.VersionColumn}.Sanitize(), len(args))
	rows, err := pg.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL: versions of %s: %w", t.Ident(), err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		vals := make([]*string, len(t.Key))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out[joinKey(vals)] = true
	}
	return out, rows.Err()
}

// rangeWhere is the chunk's key range on the target.
func rangeWhere(t *sink.Table, ch Chunk) (string, []any) {
	keys := make([]string, len(t.Key))
	for i, k := range t.Key {
		keys[i] = pgx.Identifier{t.Columns[k].Target}.Sanitize()
	}
	tuple := "(" + strings.Join(keys, ", ") + ")"
	var conds []string
	var args []any
	bound := func(op string, vals []*string) {
		ph := make([]string, len(vals))
		for i, v := range vals {
			args = append(args, v)
			ph[i] = fmt.Sprintf("$%d::%s", len(args), t.Columns[t.Key[i]].PG)
		}
		conds = append(conds, tuple+" "+op+" ("+strings.Join(ph, ", ")+")")
	}
	if ch.AfterPG != nil {
		bound(">", ch.AfterPG)
	}
	if ch.LastPG != nil {
		bound("<=", ch.LastPG)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// collect runs a query whose columns are the table's, as text, and keys
// its rows by their key columns.
func collect(ctx context.Context, t *sink.Table, pg *pgx.Conn, q string, args []any, ordered bool) (map[string]string, []string, error) {
	rows, err := pg.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("PostgreSQL: compare %s: %w", t.Ident(), err)
	}
	defer rows.Close()
	out := map[string]string{}
	var order []string
	vals := make([]*string, len(t.Columns))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	key := make([]*string, len(t.Key))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, fmt.Errorf("PostgreSQL: compare %s: %w", t.Ident(), err)
		}
		for i, k := range t.Key {
			key[i] = vals[k]
		}
		k := joinKey(key)
		out[k] = rowString(vals)
		if ordered {
			order = append(order, k)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("PostgreSQL: compare %s: %w", t.Ident(), err)
	}
	return out, order, nil
}

// joinKey renders values as one string: a single value as it is, several
// as a tuple; NULL as NULL.
func joinKey(vals []*string) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = "NULL"
		if v != nil {
			parts[i] = *v
		}
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// rowString renders a row for comparison: values separated by NUL, NULL
// as a byte no text holds.
func rowString(vals []*string) string {
	var b strings.Builder
	for _, v := range vals {
		if v == nil {
			b.WriteByte(1)
		} else {
			b.WriteString(*v)
		}
		b.WriteByte(0)
	}
	return b.String()
}
