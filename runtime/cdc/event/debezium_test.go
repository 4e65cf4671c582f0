package event_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/golden"
	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/cdc/event"
)

// TestDebeziumGoldens checks ferry's values against the values Debezium's
// own MySQL/MariaDB data-type integration tests assert. Each
// testdata/cdc/debezium/NAME.txtar ports one Debezium test class:
//
//	<comment>       the Debezium test class, the methods and assertion lines
//	                ported (repository path and commit), and those skipped
//	                and why (another decimal/time/binary/bigint mode, a
//	                custom converter, a schema assertion, ...)
//	-- ddl --       SQL statements creating the tables
//	-- inserts --   SQL statements writing the rows (INSERT, UPDATE, SET, ...)
//	-- values --    what Debezium asserts, one value a line
//
// A SQL statement may span lines and ends with a line ending in ";"; lines
// starting with "#" or "--" and blank lines are skipped. The statements run
// in that order in one session, in a database the test creates for the
// file (dbz_ and the file's name in lower case, with the server's default
// character set, as Debezium's UniqueDatabase creates it); unqualified
// table names are that database's.
//
// A values line is
//
//	TABLE.COLUMN row N => EXPECT
//	TABLE.COLUMN event N => EXPECT
//
// "row N" is the table's N-th row once all statements have run, in the
// order rows were inserted: on the streaming path the binlog's row events
// applied in order (a write appends a row, an update replaces the row
// equal to its before image, a delete removes it); on the initial load's
// path the rows of a SELECT ordered by the primary key (the goldens'
// keys ascend in insertion order; a table without one is read in storage
// order, which is insertion order for InnoDB). Both paths must give the
// same JSON, and it must match EXPECT. "event N" is the after image of the
// table's N-th row event: streaming only, as a SELECT sees only the final
// state (an INSERT's value of a row updated later).
//
// EXPECT is one of
//
//	JSON                 the value exactly as Debezium's JsonConverter
//	                     (schemas.enable=false) writes what the test asserts,
//	                     byte for byte: "1.33", 5.6, -1, null, "AQID"
//	one-of JSON | JSON   any of these (a test asserting "0 or 1 minute")
//	not-null             any value but null (assertThat(..).isNotNull())
//	instant RFC3339      a string naming that instant (a test asserting the
//	                     parts of an io.debezium.time.ZonedTimestamp)
//
// Values come from Debezium's assertions, never from ferry's output, so
// there is no update mode: a golden that disagrees with ferry is fixed by
// reading the Debezium test again, not by rewriting the golden.
//
// A line "known-difference: WHY" after a values line marks a value where
// ferry differs from Debezium on purpose or by a known limitation: the test
// logs it (t.Log) rather than failing. A marked value that ferry now gets
// right fails the test, so the marker is removed. Lines starting with "#"
// in the values section are comments (the goldens quote the Debezium
// assertion each value comes from).
func TestDebeziumGoldens(t *testing.T) {
	start := time.Now()
	var cases []*dbzCase
	for _, a := range golden.Load(t, filepath.Join("..", "..", "..", "testdata", "cdc", "debezium", "*.txtar"), 1) {
		c, err := parseDebeziumGolden(a)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, c)
	}
	total, known, ran := 0, 0, 0
	for _, srv := range servers {
		t.Run("server="+srv.name, func(t *testing.T) {
			m := mariadb(t, srv.name)
			ran++
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					n, k := runDebeziumCase(t, m, c)
					total += n
					known += k
				})
			}
		})
	}
	t.Logf("%d Debezium goldens, %d values checked on %d server(s), %d known differences, in %v",
		len(cases), total, ran, known, time.Since(start).Round(time.Millisecond))
}

// dbzCase is one golden: a ported Debezium test.
type dbzCase struct {
	name    string // the file's name without .txtar
	ddl     []string
	inserts []string
	checks  []dbzCheck
}

// dbzCheck is one values line.
type dbzCheck struct {
	line   int // in the values section
	table  string
	column string
	event  bool // "event N" rather than "row N"
	n      int
	want   dbzExpect
	known  string // the known-difference reason, if any
}

func (c *dbzCheck) String() string {
	what := "row"
	if c.event {
		what = "event"
	}
	return fmt.Sprintf("%s.%s %s %d", c.table, c.column, what, c.n)
}

// dbzExpect is a values line's EXPECT.
type dbzExpect struct {
	text    string   // as written, for messages
	oneOf   []string // exact JSON texts
	notNull bool
	instant time.Time
	isInst  bool
}

func (e dbzExpect) match(got string) bool {
	switch {
	case e.notNull:
		return got != "null" && json.Valid([]byte(got))
	case e.isInst:
		var s string
		if err := json.Unmarshal([]byte(got), &s); err != nil {
			return false
		}
		ts, err := time.Parse(time.RFC3339Nano, s)
		return err == nil && ts.Equal(e.instant)
	}
	for _, w := range e.oneOf {
		if got == w {
			return true
		}
	}
	return false
}

func parseExpect(s string) (dbzExpect, error) {
	e := dbzExpect{text: s}
	switch {
	case s == "not-null":
		e.notNull = true
		return e, nil
	case strings.HasPrefix(s, "instant "):
		ts, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(strings.TrimPrefix(s, "instant ")))
		if err != nil {
			return e, err
		}
		e.instant, e.isInst = ts, true
		return e, nil
	case strings.HasPrefix(s, "one-of "):
		for _, alt := range strings.Split(strings.TrimPrefix(s, "one-of "), " | ") {
			e.oneOf = append(e.oneOf, strings.TrimSpace(alt))
		}
	default:
		e.oneOf = []string{s}
	}
	for _, w := range e.oneOf {
		if !json.Valid([]byte(w)) {
			return e, fmt.Errorf("%q is not JSON", w)
		}
	}
	return e, nil
}

func parseDebeziumGolden(ar *golden.Archive) (*dbzCase, error) {
	path := ar.Path
	var err error
	c := &dbzCase{name: ar.Name}
	if !strings.Contains(string(ar.Comment), "Debezium") {
		return nil, fmt.Errorf("%s: the comment must name the Debezium test it ports", path)
	}
	seen := map[string]bool{}
	for _, f := range ar.Files {
		seen[f.Name] = true
		switch f.Name {
		case "ddl":
			c.ddl = splitStatements(string(f.Data))
		case "inserts":
			c.inserts = splitStatements(string(f.Data))
		case "values":
			if c.checks, err = parseValues(string(f.Data)); err != nil {
				return nil, fmt.Errorf("%s: values: %v", path, err)
			}
		default:
			return nil, fmt.Errorf("%s: unknown section %q", path, f.Name)
		}
	}
	for _, s := range []string{"ddl", "inserts", "values"} {
		if !seen[s] {
			return nil, fmt.Errorf("%s: no %s section", path, s)
		}
	}
	if len(c.checks) == 0 {
		return nil, fmt.Errorf("%s: no values", path)
	}
	return c, nil
}

// splitStatements splits a section into statements, each ending with a
// line that ends in ";".
func splitStatements(s string) []string {
	var out []string
	var cur []string
	for _, l := range strings.Split(s, "\n") {
		tl := strings.TrimSpace(l)
		if tl == "" || strings.HasPrefix(tl, "#") || strings.HasPrefix(tl, "--") {
			continue
		}
		cur = append(cur, l)
		if strings.HasSuffix(tl, ";") {
			st := strings.TrimSpace(strings.Join(cur, "\n"))
			out = append(out, strings.TrimSuffix(st, ";"))
			cur = nil
		}
	}
	if len(cur) > 0 {
		out = append(out, strings.TrimSpace(strings.Join(cur, "\n")))
	}
	return out
}

func parseValues(s string) ([]dbzCheck, error) {
	var checks []dbzCheck
	for i, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if why, ok := strings.CutPrefix(l, "known-difference:"); ok {
			if len(checks) == 0 || checks[len(checks)-1].known != "" {
				return nil, fmt.Errorf("line %d: known-difference must follow a value line", i+1)
			}
			if checks[len(checks)-1].known = strings.TrimSpace(why); checks[len(checks)-1].known == "" {
				return nil, fmt.Errorf("line %d: known-difference without a reason", i+1)
			}
			continue
		}
		left, right, ok := strings.Cut(l, " => ")
		if !ok {
			return nil, fmt.Errorf("line %d: no \" => \": %q", i+1, l)
		}
		f := strings.Fields(left)
		if len(f) != 3 || (f[1] != "row" && f[1] != "event") {
			return nil, fmt.Errorf("line %d: want TABLE.COLUMN row|event N: %q", i+1, left)
		}
		table, column, ok := strings.Cut(f[0], ".")
		if !ok || table == "" || column == "" {
			return nil, fmt.Errorf("line %d: want TABLE.COLUMN: %q", i+1, f[0])
		}
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 1 {
			return nil, fmt.Errorf("line %d: bad row number %q", i+1, f[2])
		}
		want, err := parseExpect(strings.TrimSpace(right))
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", i+1, err)
		}
		checks = append(checks, dbzCheck{line: i + 1, table: table, column: column, event: f[1] == "event", n: n, want: want})
	}
	return checks, nil
}

// dbzRow is a row as the streaming path has it: its table as the binlog
// describes it and its values as go-mysql decodes them.
type dbzRow struct {
	table  *event.Table
	values []any
}

// runDebeziumCase runs a golden on a server and returns the number of
// values checked and of known differences.
func runDebeziumCase(t *testing.T, m *devenv.MariaDB, c *dbzCase) (checked, known int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := binlogConfig(m)
	dbName := "dbz_" + strings.ToLower(c.name)
	start, err := binlog.MasterStatus(ctx, cfg, "mariadb")
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{"DROP DATABASE IF EXISTS " + dbName, "CREATE DATABASE " + dbName, "USE " + dbName}
	stmts = append(append(stmts, c.ddl...), c.inserts...)
	if err := execSession(m, stmts...); err != nil {
		t.Fatal(err)
	}
	end, err := binlog.MasterStatus(ctx, cfg, "mariadb")
	if err != nil {
		t.Fatal(err)
	}

	// Streaming: the row events of the statements, per table.
	events, final := readDebeziumRows(ctx, t, cfg, start, end, dbName)

	// The initial load: the tables read by SELECT.
	conn, err := binlog.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Execute("SET time_zone = '+00:00'"); err != nil {
		t.Fatal(err)
	}
	selected := map[string]*dbzSelect{}

	for i := range c.checks {
		ck := &c.checks[i]
		var rows []dbzRow
		if ck.event {
			rows = events[ck.table]
		} else {
			rows = final[ck.table]
		}
		if ck.n > len(rows) {
			t.Errorf("%s: the binlog has %d such rows of %s", ck, len(rows), ck.table)
			continue
		}
		r := rows[ck.n-1]
		fromBinlog := binlogValue(r, ck.column)
		ok := ck.want.match(fromBinlog)
		got := "binlog " + fromBinlog
		if !ck.event {
			sel := selected[ck.table]
			if sel == nil {
				sel = selectTable(t, conn, dbName, ck.table, r.table)
				selected[ck.table] = sel
				if len(sel.rows) != len(rows) {
					t.Errorf("%s: SELECT gives %d rows, the binlog %d", ck.table, len(sel.rows), len(rows))
				}
			}
			fromSelect := sel.value(ck.n, ck.column)
			ok = ok && ck.want.match(fromSelect) && fromSelect == fromBinlog
			got += ", SELECT " + fromSelect
		}
		checked++
		switch {
		case ck.known != "" && ok:
			t.Errorf("%s (values line %d): marked as a known difference, but ferry gives Debezium's %s: remove the marker", ck, ck.line, ck.want.text)
		case ck.known != "":
			known++
			t.Logf("known difference: %s: Debezium asserts %s, ferry gives %s: %s", ck, ck.want.text, got, ck.known)
		case !ok:
			t.Errorf("%s (values line %d): Debezium asserts %s, ferry gives %s", ck, ck.line, ck.want.text, got)
		}
	}
	return checked, known
}

// readDebeziumRows reads the binlog from start to end and returns, per
// table of the database, its row events (after images) and its rows once
// the events are applied.
func readDebeziumRows(ctx context.Context, t *testing.T, cfg binlog.Config, start, end binlog.Position, dbName string) (events, final map[string][]dbzRow) {
	t.Helper()
	r, err := binlog.Open(ctx, cfg, "mariadb", start, func(d, _ string) bool { return d == dbName })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	events, final = map[string][]dbzRow{}, map[string][]dbzRow{}
	for {
		txn, err := r.Next(rctx)
		if err != nil {
			t.Fatalf("reading the binlog up to %s: %v", end, err)
		}
		for _, rc := range txn.Rows {
			name := rc.Table.Name
			rows := final[name]
			switch rc.Op {
			case event.OpCreate:
				events[name] = append(events[name], dbzRow{rc.Table, rc.After})
				final[name] = append(rows, dbzRow{rc.Table, rc.After})
			case event.OpUpdate:
				events[name] = append(events[name], dbzRow{rc.Table, rc.After})
				i := indexRow(rows, rc.Before)
				if i < 0 {
					t.Fatalf("%s: an update of a row the binlog did not insert: %v", name, rc.Before)
				}
				rows[i] = dbzRow{rc.Table, rc.After}
			case event.OpDelete:
				i := indexRow(rows, rc.Before)
				if i < 0 {
					t.Fatalf("%s: a delete of a row the binlog did not insert: %v", name, rc.Before)
				}
				final[name] = append(rows[:i:i], rows[i+1:]...)
			}
		}
		if txn.Next.Compare(end) >= 0 {
			return events, final
		}
	}
}

func indexRow(rows []dbzRow, values []any) int {
	for i, r := range rows {
		if reflect.DeepEqual(r.values, values) {
			return i
		}
	}
	return -1
}

// binlogValue converts a binlog row's column as the streaming path does,
// with the column the reader built from the TABLE_MAP.
func binlogValue(r dbzRow, column string) string {
	i := columnIndex(r.table.Columns, column)
	if i < 0 || i >= len(r.values) {
		return fmt.Sprintf("<no column %s>", column)
	}
	b, err := event.AppendValue(nil, &r.table.Columns[i], r.values[i])
	if err != nil {
		return fmt.Sprintf("<error: %v>", err)
	}
	return string(b)
}

func columnIndex(cols []event.Column, name string) int {
	for i := range cols {
		if strings.EqualFold(cols[i].Name, name) {
			return i
		}
	}
	return -1
}

// dbzSelect is a table as the initial load reads it.
type dbzSelect struct {
	cols []event.Column
	rows [][]string // converted values, per row and column; "<error: ...>" where conversion failed
}

func (s *dbzSelect) value(n int, column string) string {
	i := columnIndex(s.cols, column)
	if i < 0 {
		return fmt.Sprintf("<no column %s>", column)
	}
	if n > len(s.rows) {
		return fmt.Sprintf("<no row %d>", n)
	}
	return s.rows[n-1][i]
}

// selectTable reads a table by SELECT over the text protocol, on the
// source account's connection (time zone UTC, as the initial load sets
// it), ordered by the primary key the binlog names, and converts each value
// as the load does: the column from event.ColumnFromField, the value
// passed as the *mysql.FieldValue (and, boxed, it must give the same).
func selectTable(t *testing.T, c *client.Conn, dbName, table string, bt *event.Table) *dbzSelect {
	t.Helper()
	q := fmt.Sprintf("SELECT * FROM `%s`.`%s`", dbName, table)
	if len(bt.Key) > 0 {
		var keys []string
		for _, k := range bt.Key {
			keys = append(keys, "`"+bt.Columns[k].Name+"`")
		}
		q += " ORDER BY " + strings.Join(keys, ", ")
	}
	res, err := c.Execute(q)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	s := &dbzSelect{}
	for _, f := range res.Fields {
		s.cols = append(s.cols, event.ColumnFromField(f))
	}
	for i := range res.Values {
		row := make([]string, len(s.cols))
		for j := range s.cols {
			fv := &res.Values[i][j]
			b, err := event.AppendValue(nil, &s.cols[j], fv)
			if err != nil {
				row[j] = fmt.Sprintf("<error: %v>", err)
				continue
			}
			if boxed, err := event.AppendValue(nil, &s.cols[j], fv.Value()); string(boxed) != string(b) {
				t.Errorf("%s.%s row %d: %s as a FieldValue, %s (%v) boxed", table, s.cols[j].Name, i+1, b, boxed, err)
			}
			row[j] = string(b)
		}
		s.rows = append(s.rows, row)
	}
	return s
}
