package event_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"golang.org/x/tools/txtar"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/golden"
	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/cdc/event"
)

// typeCase is one column type: its DDL and the literals inserted, each in
// its own row (id 1, 2, ...), plus a NULL row at the end.
type typeCase struct {
	name     string
	ddl      string
	literals []string
}

var typeCases = []typeCase{
	{"tinyint", "TINYINT", []string{"-128", "0", "127"}},
	{"tinyint_unsigned", "TINYINT UNSIGNED", []string{"0", "255"}},
	{"smallint", "SMALLINT", []string{"-32768", "32767"}},
	{"smallint_unsigned", "SMALLINT UNSIGNED", []string{"65535"}},
	{"mediumint", "MEDIUMINT", []string{"-8388608", "8388607"}},
	{"mediumint_unsigned", "MEDIUMINT UNSIGNED", []string{"16777215"}},
	{"int", "INT", []string{"-2147483648", "2147483647"}},
	{"int_unsigned", "INT UNSIGNED", []string{"0", "4294967295"}},
	{"bigint", "BIGINT", []string{"-9223372036854775808", "9223372036854775807"}},
	{"bigint_unsigned", "BIGINT UNSIGNED", []string{"0", "9223372036854775807", "18446744073709551615"}},
	{"decimal", "DECIMAL(10,2)", []string{"0", "1.5", "-12345678.99"}},
	{"decimal_wide", "DECIMAL(65,30)", []string{"12345678901234567890123456789012345.123456789012345678901234567890", "-0.000000000000000000000000000001"}},
	{"float", "FLOAT", []string{"0", "1.5", "3.14", "100", "-1e10", "0.00001"}},
	// Debezium's MySqlFloatIT: FLOAT(M,D) is the float's value as a double,
	// FLOAT(p<=24) and FLOAT UNSIGNED a float.
	{"float_m_d", "FLOAT(10,2)", []string{"5.61", "-1234.5", "0"}},
	{"float_35_5", "FLOAT(35,5)", []string{"30.123456"}},
	{"float_p24", "FLOAT(24)", []string{"64.1"}},
	{"float_unsigned", "FLOAT UNSIGNED", []string{"64.1234"}},
	{"double", "DOUBLE", []string{"0", "3.141592653589793", "100", "1e300", "-2.5e-7", "12345678.9"}},
	{"bit1", "BIT(1)", []string{"b'0'", "b'1'"}},
	{"bit12", "BIT(12)", []string{"b'101010101010'", "b'1'"}},
	{"bit16", "BIT(16)", []string{"b'0000000100000010'", "b'1111111111111111'"}},
	{"bit64", "BIT(64)", []string{"b'1000000000000000000000000000000000000000000000000000000000000001'"}},
	{"date", "DATE", []string{"'1970-01-01'", "'2024-01-02'", "'1969-12-31'", "'1000-01-01'", "'9999-12-31'"}},
	// enable.time.adjuster (Debezium's default): years 0-69 are 2000-2069,
	// 70-99 1970-1999.
	{"date_two_digit_year", "DATE", []string{"'0018-04-01'", "'0000-01-01'", "'0069-12-31'", "'0070-01-01'", "'0099-12-31'", "'0100-01-01'"}},
	{"datetime_two_digit_year", "DATETIME(3)", []string{"'0018-04-01 10:00:00.5'", "'0075-01-01 00:00:00'"}},
	{"time", "TIME", []string{"'00:00:00'", "'12:34:56'", "'-838:59:59'", "'838:59:59'"}},
	{"time6", "TIME(6)", []string{"'12:34:56.123456'", "'-00:00:01.5'"}},
	{"datetime0", "DATETIME", []string{"'2024-01-02 03:04:05'", "'1970-01-01 00:00:00'", "'1960-06-15 12:00:00'"}},
	{"datetime1", "DATETIME(1)", []string{"'2024-01-02 03:04:05.1'"}},
	{"datetime2", "DATETIME(2)", []string{"'2024-01-02 03:04:05.12'"}},
	{"datetime3", "DATETIME(3)", []string{"'2024-01-02 03:04:05.123'", "'1960-06-15 12:00:00.5'"}},
	{"datetime4", "DATETIME(4)", []string{"'2024-01-02 03:04:05.1234'"}},
	{"datetime5", "DATETIME(5)", []string{"'2024-01-02 03:04:05.12345'"}},
	{"datetime6", "DATETIME(6)", []string{"'2024-01-02 03:04:05.123456'", "'9999-12-31 23:59:59.999999'"}},
	{"timestamp0", "TIMESTAMP NULL", []string{"'2024-01-02 03:04:05'", "'1970-01-01 00:00:01'", "'2038-01-19 03:14:07'"}},
	{"timestamp3", "TIMESTAMP(3) NULL", []string{"'2024-01-02 03:04:05.120'"}},
	{"timestamp6", "TIMESTAMP(6) NULL", []string{"'2024-01-02 03:04:05.123456'"}},
	{"year", "YEAR", []string{"1901", "2024", "2155"}},
	{"char", "CHAR(10)", []string{"'abc'", "''"}},
	{"varchar", "VARCHAR(100)", []string{"'héllo wörld'", "'😀 emoji 🚢'", `'quote " and \\ backslash'`, `'tab\tnewline\n'`}},
	{"tinytext", "TINYTEXT", []string{"'short'"}},
	{"text", "TEXT", []string{"'日本語のテキスト'"}},
	{"mediumtext", "MEDIUMTEXT", []string{"REPEAT('ab', 40)"}},
	{"longtext", "LONGTEXT", []string{"'😀'"}},
	{"binary", "BINARY(4)", []string{"X'01'", "X'DEADBEEF'"}},
	{"varbinary", "VARBINARY(10)", []string{"X'00FF'", "X''"}},
	{"tinyblob", "TINYBLOB", []string{"X'00'"}},
	{"blob", "BLOB", []string{"X'0001020304'"}},
	{"mediumblob", "MEDIUMBLOB", []string{"X'FFFEFD'"}},
	{"longblob", "LONGBLOB", []string{"'plain text in a blob'"}},
	{"enum", "ENUM('small','medium','large')", []string{"'small'", "'large'"}},
	{"set", "SET('a','b','c','d')", []string{"'a'", "'a,c'", "''", "'b,c,d'"}},
	{"varchar_latin1", "VARCHAR(20) CHARACTER SET latin1", []string{"'café €'", "'plain'", "'Ã©'", "X'81'", "X'8D8F909D'"}},
	{"varchar_utf8mb4", "VARCHAR(40) CHARACTER SET utf8mb4", []string{"'주문🚀'", "'𝄞 𠜎'"}},
	{"char_utf8mb3", "CHAR(20) CHARACTER SET utf8mb3", []string{"'café ü 日本'", "'ascii'"}},
	{"varchar_ucs2", "VARCHAR(20) CHARACTER SET ucs2", []string{"'日本語 ü'", "'Ω'"}},
	{"varchar_utf16", "VARCHAR(20) CHARACTER SET utf16", []string{"'주문🚀'", "'a😀b'"}},
	{"varchar_utf16le", "VARCHAR(20) CHARACTER SET utf16le", []string{"'주문🚀'"}},
	{"text_utf32", "TEXT CHARACTER SET utf32", []string{"'🚀 x 𝄞'"}},
	{"varchar_cp1251", "VARCHAR(20) CHARACTER SET cp1251", []string{"'Привет'"}},
	{"varchar_latin2", "VARCHAR(20) CHARACTER SET latin2", []string{"'Łódź'"}},
	{"varchar_sjis", "VARCHAR(20) CHARACTER SET sjis", []string{"'日本語'"}},
	{"varchar_gbk", "VARCHAR(20) CHARACTER SET gbk", []string{"'中文'"}},
	{"enum_latin1", "ENUM('café','thé') CHARACTER SET latin1", []string{"'thé'"}},
	{"set_utf16", "SET('ü','日本') CHARACTER SET utf16", []string{"'ü,日本'"}},
	{"json", "JSON", []string{`'{"a": 1, "b": [1, 2, "x"]}'`, "'[]'", `'"str"'`, "'null'"}},
}

// servers are the server configurations every golden is read from: the
// devenv's (utf8mb4) and MariaDB's built-in default character set
// (latin1), as a server without a config file runs. The values must not
// depend on it.
var servers = []struct {
	name string
	args []string
}{
	{"utf8mb4", nil},
	{"latin1", []string{"--character-set-server=latin1", "--collation-server=latin1_swedish_ci"}},
}

var dbs = map[string]*devenv.MariaDB{}

// mariadb starts the server of that name once for the package's tests.
func mariadb(t testing.TB, server string) *devenv.MariaDB {
	t.Helper()
	if db := dbs[server]; db != nil {
		return db
	}
	if _, _, err := devenv.MariaDBBinaries(); err != nil {
		t.Skip(err)
	}
	for _, s := range servers {
		if s.name == server {
			m, err := devenv.StartMariaDB(devenv.MariaDBOptions{Args: s.args})
			if err != nil {
				t.Fatal(err)
			}
			dbs[server] = m
			return m
		}
	}
	t.Fatalf("no server %q", server)
	return nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, db := range dbs {
		db.Close()
	}
	os.Exit(code)
}

func binlogConfig(m *devenv.MariaDB) binlog.Config {
	return binlog.Config{Addr: m.Addr(), User: devenv.FerryUser, Password: devenv.FerryPassword, ServerID: 9001}
}

// TestTypeGoldens inserts each type's literals into a real MariaDB, reads
// the rows back from the binlog, and compares their Debezium values with
// testdata/cdc/types/NAME.txtar (FERRY_UPDATE_GOLDEN=1 rewrites them). The
// same rows read by SELECT, as the initial load reads them, must give the
// same values.
func TestTypeGoldens(t *testing.T) {
	for _, srv := range servers {
		t.Run("server="+srv.name, func(t *testing.T) { typeGoldens(t, mariadb(t, srv.name)) })
	}
}

func typeGoldens(t *testing.T, m *devenv.MariaDB) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.Exec("CREATE DATABASE IF NOT EXISTS types CHARACTER SET utf8mb4"); err != nil {
		t.Fatal(err)
	}
	cfg := binlogConfig(m)
	for _, tc := range typeCases {
		t.Run(tc.name, func(t *testing.T) {
			pos, err := binlog.MasterStatus(ctx, cfg, "mariadb")
			if err != nil {
				t.Fatal(err)
			}
			table := "t_" + tc.name
			ddl := fmt.Sprintf("CREATE TABLE types.%s (id INT PRIMARY KEY, v %s)", table, tc.ddl)
			stmts := []string{"SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'", ddl}
			for i, lit := range tc.literals {
				stmts = append(stmts, fmt.Sprintf("INSERT INTO types.%s VALUES (%d, %s)", table, i+1, lit))
			}
			stmts = append(stmts, fmt.Sprintf("INSERT INTO types.%s VALUES (%d, NULL)", table, len(tc.literals)+1))
			if err := execSession(m, stmts...); err != nil {
				t.Fatal(err)
			}
			want := len(tc.literals) + 1
			rows := readRows(ctx, t, cfg, pos, "types", table, want)

			var values bytes.Buffer
			first := true
			var eventText string
			for i, r := range rows {
				v, err := event.AppendValue(nil, &r.Table.Columns[1], r.After[1])
				if err != nil {
					t.Fatalf("row %d: %v", i+1, err)
				}
				lit := "NULL"
				if i < len(tc.literals) {
					lit = tc.literals[i]
				}
				fmt.Fprintf(&values, "%s => %s\n", lit, v)
				if first {
					first = false
					recs, err := r.Table.Encode(&event.Change{Op: event.OpCreate, After: r.After, Source: event.Source{
						Name: "trading", Time: time.Unix(1704164645, 0), ServerID: 1, File: pos.File, Pos: r.Pos, Row: r.Row,
					}}, time.UnixMicro(1704164645123456))
					if err != nil {
						t.Fatal(err)
					}
					eventText = fmt.Sprintf("key: %s\nvalue: %s\n", recs[0].Key, mask(recs[0].Value))
				}
			}
			// The initial load reads the same rows by SELECT: same values.
			snap := selectValues(t, m, "types", table)
			for i, r := range rows {
				bv, _ := event.AppendValue(nil, &r.Table.Columns[1], r.After[1])
				if string(bv) != snap[i] {
					t.Errorf("row %d: binlog gives %s, SELECT gives %s", i+1, bv, snap[i])
				}
			}
			ar := &txtar.Archive{
				Comment: []byte(fmt.Sprintf("Debezium value of a %s column (from real binlog events of MariaDB).\n", tc.ddl)),
				Files: []txtar.File{
					{Name: "ddl", Data: []byte(ddl + "\n")},
					{Name: "values", Data: values.Bytes()},
					{Name: "event", Data: []byte(eventText)},
				},
			}
			golden.CheckFile(t, filepath.Join("..", "..", "..", "testdata", "cdc", "types", tc.name+".txtar"), txtar.Format(ar))
		})
	}
}

var maskRE = regexp.MustCompile(`"(pos|thread)":\d+`)

func mask(b []byte) string {
	return maskRE.ReplaceAllString(string(b), `"$1":"<masked>"`)
}

func execSession(m *devenv.MariaDB, stmts ...string) error {
	c, err := m.Root()
	if err != nil {
		return err
	}
	defer c.Close()
	for _, s := range stmts {
		if _, err := c.Execute(s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

func readRows(ctx context.Context, t *testing.T, cfg binlog.Config, pos binlog.Position, dbName, table string, n int) []binlog.Rows {
	t.Helper()
	r, err := binlog.Open(ctx, cfg, "mariadb", pos, func(d, tb string) bool { return d == dbName && tb == table })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var rows []binlog.Rows
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for len(rows) < n {
		txn, err := r.Next(rctx)
		if err != nil {
			t.Fatalf("after %d rows: %v", len(rows), err)
		}
		rows = append(rows, txn.Rows...)
	}
	return rows
}

// selectValues reads column v of a table by SELECT over the text protocol,
// on a connection of the source's account as the initial load opens it,
// and converts it as the load does.
func selectValues(t *testing.T, m *devenv.MariaDB, dbName, table string) []string {
	t.Helper()
	c, err := binlog.Connect(context.Background(), binlogConfig(m))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Execute("SET time_zone = '+00:00'"); err != nil {
		t.Fatal(err)
	}
	res, err := c.Execute(fmt.Sprintf("SELECT id, v FROM %s.%s ORDER BY id", dbName, table))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	col := event.ColumnFromField(res.Fields[1])
	var out []string
	for i := range res.Values {
		// As the initial load passes it, and boxed: the same value.
		fv := &res.Values[i][1]
		b, err := event.AppendValue(nil, &col, fv)
		if err != nil {
			t.Fatalf("SELECT row %d: %v", i+1, err)
		}
		if boxed, err := event.AppendValue(nil, &col, fv.Value()); string(boxed) != string(b) {
			t.Errorf("SELECT row %d: %s as a FieldValue, %s (%v) boxed", i+1, b, boxed, err)
		}
		out = append(out, string(b))
	}
	return out
}

// The Java float formatting, checked against Float.toString and
// Double.toString outputs.
func TestJavaFloat(t *testing.T) {
	for _, c := range []struct {
		f    float64
		bits int
		want string
	}{
		{0, 64, "0.0"}, {1, 64, "1.0"}, {100, 64, "100.0"}, {1.5, 64, "1.5"},
		{1e7, 64, "1.0E7"}, {9999999, 64, "9999999.0"}, {0.001, 64, "0.001"}, {0.0001, 64, "1.0E-4"},
		{1e300, 64, "1.0E300"}, {-2.5e-7, 64, "-2.5E-7"}, {123456789.5, 64, "1.234567895E8"},
		{float64(float32(3.14)), 32, "3.14"}, {float64(float32(-1e10)), 32, "-1.0E10"}, {float64(float32(1e-5)), 32, "1.0E-5"},
		{0.30000000000000004, 64, "0.30000000000000004"},
	} {
		if got := string(event.AppendJavaFloat(nil, c.f, c.bits)); got != c.want {
			t.Errorf("%v/%d = %s, want %s", c.f, c.bits, got, c.want)
		}
	}
}
