package cdc

import (
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/ferry-pipelines/ferry/runtime/cdc/event"
)

// textRow is a row as the text protocol sends it: each value
// length-prefixed, 0xfb for NULL.
func textRow(vals ...string) mysql.RowData {
	var p []byte
	for _, v := range vals {
		p = append(p, byte(len(v)))
		p = append(p, v...)
	}
	return p
}

// The chunk encoder's rows, from values parsed as go-mysql parses them: a
// row that cannot be converted becomes a dead letter with its key and raw
// values, the table's first and last rows are marked, and a value buffer
// that go-mysql reuses for the next row changes no record. Buffers back
// from the pool hold none of an earlier chunk's records.
func TestChunkEncoder(t *testing.T) {
	var pool bufPool
	fields := []*mysql.Field{
		{Name: []byte("id"), Type: mysql.MYSQL_TYPE_LONG, Flag: mysql.PRI_KEY_FLAG | mysql.NOT_NULL_FLAG},
		{Name: []byte("at"), Type: mysql.MYSQL_TYPE_DATETIME, Decimal: 6},
	}
	enc := &chunkEncoder{
		bufs:  pool.get(),
		t:     &snapTable{db: "trading", tbl: "orders", keyCols: []string{"id"}},
		size:  3,
		src:   event.Source{Name: "trading"},
		first: true, last: true,
	}
	var row []mysql.FieldValue
	for i, vals := range [][]string{
		{"1", "2024-01-02 03:04:05.123456"},
		{"2", "not a date"},
		{"3", "1970-01-01 00:00:01.000000"},
	} {
		var err error
		if row, err = textRow(vals...).ParseText(fields, row); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			enc.begin(fields, event.SnapshotTrue)
		}
		enc.add(row)
	}
	out := enc.finish()
	if len(out.recs) != 2 || len(out.failed) != 1 {
		t.Fatalf("%d records, %d failed; want 2 and 1", len(out.recs), len(out.failed))
	}
	for i, want := range []struct{ key, after, snapshot string }{
		{`{"id":1}`, `"after":{"id":1,"at":1704164645123456}`, `"snapshot":"first_in_data_collection"`},
		{`{"id":3}`, `"after":{"id":3,"at":1000000}`, `"snapshot":"last_in_data_collection"`},
	} {
		if string(out.recs[i].Key) != want.key {
			t.Errorf("record %d: key %s, want %s", i, out.recs[i].Key, want.key)
		}
		v := string(out.recs[i].Value)
		for _, part := range []string{want.after, want.snapshot, `"op":"r"`} {
			if !strings.Contains(v, part) {
				t.Errorf("record %d: %s lacks %s", i, v, part)
			}
		}
	}
	f := out.failed[0]
	if f.key != `{"id":2}` || string(f.raw) != `{"after":[2,"bm90IGEgZGF0ZQ=="],"op":"r"}` {
		t.Errorf("dead letter: key %s, raw %s", f.key, f.raw)
	}

	pool.Put(out.bufs)
	empty := &chunkEncoder{bufs: pool.get(), t: enc.t, size: 3}
	if out := empty.finish(); len(out.recs) != 0 {
		t.Errorf("an empty chunk on pooled buffers has %d records", len(out.recs))
	}
}

// sqlWorld is a world whose MariaDB ran stmts, and a root session on it,
// closed when the test ends: for the planner's queries, run directly.
func sqlWorld(t *testing.T, stmts ...string) (*world, *client.Conn) {
	t.Helper()
	w := newWorld(t)
	if err := w.db.Exec(stmts...); err != nil {
		t.Fatal(err)
	}
	c, err := w.db.Root()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return w, c
}

// A one-column integer key filling its range is cut by arithmetic into
// chunks of at most chunkSize keys, and the last chunk is the one that
// holds the largest key when it is reached, rows added meanwhile included;
// sparse keys are left to boundary queries.
func TestIntKeys(t *testing.T) {
	w, c := sqlWorld(t,
		"CREATE TABLE trading.dense (id BIGINT PRIMARY KEY)",
		"INSERT INTO trading.dense SELECT seq FROM trading.seq_1_to_1000",
		"CREATE TABLE trading.sparse (id INT PRIMARY KEY)",
		"INSERT INTO trading.sparse SELECT seq * 1000 FROM trading.seq_1_to_100")
	kinds := []event.Kind{event.KindInt}
	k, err := denseIntKeys(c, "trading", "dense", []string{"id"}, kinds, nil, 1000, 300)
	if err != nil || k == nil {
		t.Fatalf("dense keys: %v, %v", k, err)
	}
	var bounds []string
	var lo [][]byte
	for {
		if len(bounds) == 3 {
			if err := w.db.Exec("INSERT INTO trading.dense SELECT seq FROM trading.seq_1001_to_1500"); err != nil {
				t.Fatal(err)
			}
		}
		hi, err := k.next(c, lo, 300)
		if err != nil {
			t.Fatal(err)
		}
		if hi == nil {
			break
		}
		bounds = append(bounds, string(hi[0]))
		lo = hi
	}
	if got, want := strings.Join(bounds, " "), "300 600 900 1200"; got != want {
		t.Errorf("bounds %s, want %s, then the last chunk", got, want)
	}
	if k, err := denseIntKeys(c, "trading", "sparse", []string{"id"}, kinds, nil, 100, 300); err != nil || k != nil {
		t.Errorf("sparse keys cut by arithmetic: %v, %v", k, err)
	}
}

func TestChunkRowCount(t *testing.T) {
	for _, c := range []struct {
		limit    int
		rowBytes int64
		want     int
	}{
		{8192, 0, probeRows}, // not measured yet
		{10, 0, 10},
		{8192, 600, 8192},
		{8192, 1 << 20, int(chunkBytes >> 20)},
		{8192, 1 << 40, 1},
	} {
		if got := chunkRowCount(c.limit, c.rowBytes); got != c.want {
			t.Errorf("chunkRowCount(%d, %d) = %d, want %d", c.limit, c.rowBytes, got, c.want)
		}
	}
}

// loadByChunk loads a table that stmts create and fill, with chunkBytes at
// 1 MiB and one chunk read at a time, and returns its records grouped by
// chunk: each chunk's rows name the binlog position of its low watermark,
// and with one chunk at a time each has its own. Records come in topic
// order.
func loadByChunk(t *testing.T, name string, rows int64, stmts ...string) (recs []rec, chunkOf func(rec) int64) {
	defer func(b int64) { chunkBytes = b }(chunkBytes)
	chunkBytes = 1 << 20
	w := newWorld(t)
	if err := w.db.Exec(stmts...); err != nil {
		t.Fatal(err)
	}
	pj := w.job(table(name, "initial", 2))
	pj.CDC.Snapshot.Parallelism = 1
	r := w.start(pj)
	waitSnapshot(t, r, name, rows)
	r.stop(t)
	return w.read("trading." + name), func(x rec) int64 { return decode(t, x).Source.Pos }
}

// Large rows are loaded in chunks of about chunkBytes, not chunkSize rows:
// a chunk is held in memory until its high watermark passes.
func TestSnapshotLargeRows(t *testing.T) {
	recs, chunkOf := loadByChunk(t, "trading.docs", 200,
		"CREATE TABLE trading.docs (id INT PRIMARY KEY, doc LONGBLOB)",
		"INSERT INTO trading.docs SELECT seq, REPEAT(CHAR(65 + seq % 26), 100000) FROM trading.seq_1_to_200")
	chunks := map[int64]int{}
	keys := map[string]bool{}
	for _, x := range recs {
		if doc, _ := decode(t, x).After["doc"].(string); len(doc) != 133336 {
			t.Fatalf("row %s: doc of %d base64 bytes, want 133336", x.key, len(doc))
		}
		chunks[chunkOf(x)]++
		keys[x.key] = true
	}
	sizes := map[int]int{}
	for _, n := range chunks {
		sizes[n]++
	}
	// A few 16-row probes (planned before the first was read), then
	// chunks of 1 MiB / 134 kB = 7 rows.
	t.Logf("chunks by row count: %v", sizes)
	if len(keys) != 200 || sizes[7] < 15 || len(sizes) > 3 {
		t.Errorf("%d rows, chunks by size %v; want 200 rows, in 7-row chunks after a few of 16", len(keys), sizes)
	}
}

// A chunk planned for small rows that meets much larger ones is cut once
// its records pass twice chunkBytes, and the rest of its range becomes the
// next chunk: every row is loaded once, in key order, the table's first and
// last rows marked, and no chunk holds much more than twice chunkBytes.
func TestSnapshotCutChunk(t *testing.T) {
	recs, chunkOf := loadByChunk(t, "trading.mixed", 2060,
		"CREATE TABLE trading.mixed (id INT PRIMARY KEY, doc LONGBLOB)",
		"INSERT INTO trading.mixed SELECT seq, 'small' FROM trading.seq_1_to_2000",
		"INSERT INTO trading.mixed SELECT seq, REPEAT('x', 300000) FROM trading.seq_2001_to_2060")
	chunkSize := map[int64]int{}
	last, marks := 0, map[string]int{}
	for _, x := range recs {
		e := decode(t, x)
		id := int(e.After["id"].(float64))
		if id != last+1 {
			t.Fatalf("row %d after row %d", id, last)
		}
		last = id
		chunkSize[chunkOf(x)] += len(x.key) + len(x.value)
		if e.Source.Snapshot != "true" {
			marks[e.Source.Snapshot] = id
		}
	}
	biggest := 0
	for _, n := range chunkSize {
		biggest = max(biggest, n)
	}
	t.Logf("%d chunks, the biggest %d bytes", len(chunkSize), biggest)
	if last != 2060 || biggest > 2<<20+500_000 {
		t.Errorf("%d rows, the biggest chunk %d bytes; want 2060 rows and chunks up to 2 MiB and a row", last, biggest)
	}
	if marks["first_in_data_collection"] != 1 || marks["last_in_data_collection"] != 2060 || len(marks) != 2 {
		t.Errorf("markers %v", marks)
	}
}

// boundary leaves no empty last chunk: where exactly n rows remain, they
// are the last chunk.
func TestBoundary(t *testing.T) {
	_, c := sqlWorld(t,
		"CREATE TABLE trading.pairs (a VARCHAR(4), b INT, PRIMARY KEY (a, b))",
		"INSERT INTO trading.pairs SELECT IF(seq <= 5, 'x', 'y'), seq FROM trading.seq_1_to_10")
	cols, kinds := []string{"a", "b"}, []event.Kind{event.KindString, event.KindInt}
	for _, tc := range []struct {
		lo   [][]byte
		n    int
		want string
	}{
		{nil, 4, "x,4"},
		{[][]byte{[]byte("x"), []byte("4")}, 4, "y,8"},
		{[][]byte{[]byte("y"), []byte("6")}, 4, ""}, // 7..10: exactly 4 left
		{nil, 10, ""},
		{nil, 9, "y,9"},
	} {
		hi, err := boundary(c, "trading", "pairs", cols, kinds, tc.lo, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		if got := keyText(hi); got != tc.want {
			t.Errorf("boundary(%s, %d) = %q, want %q", keyText(tc.lo), tc.n, got, tc.want)
		}
	}
}
