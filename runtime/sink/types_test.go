package sink_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/internal/golden"
)

// typeCase is one golden of testdata/cdc/types: a table with an id and a
// column v of one MySQL type, and the values to write.
type typeCase struct {
	name   string // the table, t_<type>
	ddl    string
	values []string // SQL literals
	mysql  string   // the MySQL type, lower case ("decimal(10,2)")
}

var ddlColumn = regexp.MustCompile(`(?i)^CREATE TABLE types\.(\w+) \(id INT PRIMARY KEY, v (.+)\)$`)

func typeCases(t *testing.T) []typeCase {
	var out []typeCase
	for _, a := range golden.Load(t, filepath.Join("..", "..", "testdata", "cdc", "types", "*.txtar"), 40) {
		f := a.Path
		var c typeCase
		ddl, _ := a.Section("ddl")
		c.ddl = strings.TrimSpace(string(ddl))
		values, _ := a.Section("values")
		for _, line := range strings.Split(strings.TrimSpace(string(values)), "\n") {
			lit, _, ok := strings.Cut(line, " => ")
			if !ok {
				t.Fatalf("%s: values line %q", f, line)
			}
			c.values = append(c.values, lit)
		}
		m := ddlColumn.FindStringSubmatch(c.ddl)
		if m == nil {
			t.Fatalf("%s: ddl %q", f, c.ddl)
		}
		c.name, c.mysql = m[1], strings.ToLower(m[2])
		out = append(out, c)
	}
	return out
}

// TestTypes writes every value of the CDC type goldens into MariaDB,
// through the CDC job and a sink per table into PostgreSQL, and compares
// each value as MariaDB reads it with the value PostgreSQL holds (both
// rendered by the databases themselves, compared by meaning: numbers as
// numbers, instants as instants, bytes as hex, JSON as data).
func TestTypes(t *testing.T) {
	w := newWorld(t)
	cases := typeCases(t)
	w.mysql("CREATE DATABASE types")
	var tables []sinkTable
	for _, c := range cases {
		w.mysql(c.ddl)
		tables = append(tables, sinkTable{name: "types." + c.name, snapshot: "no_data", tier: 1})
	}
	p := w.buildPlan(tables...)
	for i := range p.Jobs { // the type tables' topics are types.types.t_*
		if s := p.Jobs[i].Sink; s != nil {
			s.Topic = "trading." + s.Table
		}
	}
	w.run(p)
	for _, c := range cases {
		for i, v := range c.values {
			w.mysql(fmt.Sprintf("INSERT INTO types.%s VALUES (%d, %s)", c.name, i+1, v))
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srcExpr, pgExpr, same := comparison(c.mysql)
			want, err := w.db.Query(fmt.Sprintf("SELECT id, %s FROM types.%s ORDER BY id", srcExpr, c.name))
			if err != nil {
				t.Fatal(err)
			}
			var got [][]string
			waitFor(t, 60*time.Second, "rows in PostgreSQL", func() (bool, string) {
				got = w.pgQuery(fmt.Sprintf("SELECT t.id::text, %s FROM public.%s t ORDER BY t.id", pgExpr, c.name))
				return len(got) == len(want), fmt.Sprint(got)
			})
			for i := range want {
				if got[i][0] != want[i][0] {
					t.Fatalf("row %d: id %s in PostgreSQL, %s in MariaDB", i, got[i][0], want[i][0])
				}
				if (got[i][1] == "NULL") != (want[i][1] == "NULL") || (want[i][1] != "NULL" && !same(want[i][1], got[i][1])) {
					t.Errorf("%s value %s: MariaDB has %q, PostgreSQL %q", c.mysql, c.values[i], want[i][1], got[i][1])
				}
			}
		})
	}
	// The target types are the documented ones.
	types := w.pgQuery(`SELECT table_name::text, format_type(a.atttypid, a.atttypmod) FROM information_schema.columns c
		JOIN pg_attribute a ON a.attrelid = ('public.' || c.table_name)::regclass AND a.attname = c.column_name
		WHERE c.table_schema = 'public' AND c.column_name = 'v' ORDER BY 1`)
	got := map[string]string{}
	for _, r := range types {
		got[r[0]] = r[1]
	}
	for name, want := range map[string]string{
		"t_bigint_unsigned": "numeric(20,0)", "t_decimal": "numeric(10,2)", "t_float": "real", "t_double": "double precision",
		"t_bit1": "boolean", "t_bit12": "bit(12)", "t_date": "date", "t_time6": "interval", "t_datetime3": "timestamp(3) without time zone",
		"t_timestamp6": "timestamp(6) with time zone", "t_year": "smallint", "t_char": "character varying(10)", "t_text": "text",
		"t_binary": "bytea", "t_enum": "text", "t_set": "text", "t_json": "jsonb", "t_tinyint_unsigned": "smallint", "t_int_unsigned": "bigint",
	} {
		if got[name] != want {
			t.Errorf("%s.v is %s in PostgreSQL, want %s", name, got[name], want)
		}
	}

}

// comparison returns, for a MySQL type, how each database renders a value
// and how two renderings are compared.
func comparison(mysqlType string) (src, pg string, same func(a, b string) bool) {
	text := func(a, b string) bool { return a == b }
	base := strings.Fields(strings.Split(mysqlType, "(")[0])[0]
	switch base {
	case "float", "double":
		bits := 64
		if base == "float" {
			bits = 32
		}
		return "v", "v::text", func(a, b string) bool {
			x, e1 := strconv.ParseFloat(a, bits)
			y, e2 := strconv.ParseFloat(b, bits)
			return e1 == nil && e2 == nil && x == y
		}
	case "bit":
		pg := "v::text"
		if mysqlType == "bit(1)" { // boolean
			pg = "v::int::text"
		}
		return "BIN(v)", pg, func(a, b string) bool {
			x, e1 := strconv.ParseUint(a, 2, 64)
			y, e2 := strconv.ParseUint(b, 2, 64)
			return e1 == nil && e2 == nil && x == y
		}
	case "time":
		return "CAST(v AS CHAR)", "v::text", func(a, b string) bool {
			x, y := durationOf(a), durationOf(b)
			return x != nil && y != nil && *x == *y
		}
	case "datetime", "timestamp":
		return adjusted, "v::text", func(a, b string) bool {
			x, y := instant(a), instant(b)
			return x != nil && y != nil && x.Equal(*y)
		}
	case "date":
		return adjusted, "v::text", text
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return "HEX(v)", "upper(encode(v, 'hex'))", text
	case "json":
		return "v", "v::text", func(a, b string) bool {
			var x, y any
			return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
		}
	}
	return "CAST(v AS CHAR)", "v::text", text
}

// adjusted is MariaDB's value with the time adjuster's years (Debezium's
// default): 0-69 are 2000-2069, 70-99 1970-1999.
const adjusted = "CAST(IF(YEAR(v) < 70, v + INTERVAL 2000 YEAR, IF(YEAR(v) < 100, v + INTERVAL 1900 YEAR, v)) AS CHAR)"

var durationText = regexp.MustCompile(`^(-?)(\d+):(\d\d):(\d\d)(\.\d+)?$`)

// durationOf reads [-]H:MM:SS[.ffffff] (MariaDB's TIME, PostgreSQL's
// interval) as microseconds.
func durationOf(s string) *int64 {
	m := durationText.FindStringSubmatch(s)
	if m == nil {
		return nil
	}
	h, _ := strconv.ParseInt(m[2], 10, 64)
	mi, _ := strconv.ParseInt(m[3], 10, 64)
	sec, _ := strconv.ParseInt(m[4], 10, 64)
	frac := 0.0
	if m[5] != "" {
		frac, _ = strconv.ParseFloat("0"+m[5], 64)
	}
	us := ((h*60+mi)*60+sec)*1e6 + int64(frac*1e6+0.5)
	if m[1] == "-" {
		us = -us
	}
	return &us
}

// instant reads MariaDB's "2006-01-02 15:04:05.999999" (UTC) or
// PostgreSQL's with an optional "+00" zone.
func instant(s string) *time.Time {
	s = strings.TrimSuffix(s, "+00")
	t, err := time.Parse("2006-01-02 15:04:05.999999999", s)
	if err != nil {
		return nil
	}
	return &t
}
