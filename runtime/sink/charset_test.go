package sink_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/schema"
)

// charsetColumns are columns of every kind of character set, with two
// values each (a and b). The values are given as UTF-8; b's column holds
// bytes, given in hex.
var charsetColumns = []struct {
	name, ddl string
	a, b      string
}{
	{"u4", "VARCHAR(40) CHARACTER SET utf8mb4", "주문🚀", "𝄞 𠜎"},
	{"u3", "VARCHAR(40) CHARACTER SET utf8mb3", "café ü 日本", "ñ"},
	{"l1", "VARCHAR(40) CHARACTER SET latin1", "café € Ã©", "Ÿ‰ ü"},
	{"u2", "VARCHAR(40) CHARACTER SET ucs2", "日本語 ü", "Ω"},
	{"u16", "VARCHAR(40) CHARACTER SET utf16", "a😀b", "🚀"},
	{"bin", "VARBINARY(40)", "00ff80", "01"},
	{"dflt", "VARCHAR(40)", "plain é", "ü"}, // the database's default character set
}

// TestCharsets writes every character set's values into MariaDB, on a
// server with MariaDB's built-in default character set (latin1, as a
// server without a config file runs) and on one with utf8mb4, and finds
// each value unchanged in the initial load's r event, in the c, u and d
// events from the binlog, and in PostgreSQL.
func TestCharsets(t *testing.T) {
	for _, server := range []string{"latin1", "utf8mb4"} {
		t.Run("server="+server, func(t *testing.T) {
			w := newWorldWith(t, devenv.MariaDBOptions{Args: []string{"--character-set-server=" + server, "--collation-server=" + server + "_general_ci"}})
			var cols, ddl []string
			for _, c := range charsetColumns {
				cols = append(cols, c.name)
				ddl = append(ddl, c.name+" "+c.ddl)
			}
			w.mysql("CREATE TABLE trading.chars (id INT PRIMARY KEY, " + strings.Join(ddl, ", ") + ")")
			w.mysql("INSERT INTO trading.chars VALUES " + charsetRow(1, false))
			p := w.buildPlan(sinkTable{name: "trading.chars", snapshot: "initial", tier: 1})
			w.run(p)
			events := func(n int) []string {
				var got []string
				waitFor(t, 60*time.Second, fmt.Sprintf("%d events", n), func() (bool, string) {
					got = w.events("trading.trading.chars")
					return len(got) >= n, strings.Join(got, "\n")
				})
				return got
			}
			events(1) // the load is done: the changes below come after it
			w.mysql(
				"INSERT INTO trading.chars VALUES "+charsetRow(2, false),
				"UPDATE trading.chars SET "+charsetSet(true)+" WHERE id = 1",
				"DELETE FROM trading.chars WHERE id = 2",
				"INSERT INTO trading.chars VALUES "+charsetRow(3, true),
			)
			want := []string{
				"1 r null -> " + charsetJSON(1, false),
				"2 c null -> " + charsetJSON(2, false),
				"1 u " + charsetJSON(1, false) + " -> " + charsetJSON(1, true),
				"2 d " + charsetJSON(2, false) + " -> null",
				"2 tombstone",
				"3 c null -> " + charsetJSON(3, true),
			}
			if got := events(len(want)); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			// PostgreSQL holds the same text, and the bytes as they were.
			var sel []string
			for _, c := range charsetColumns {
				if c.name == "bin" {
					sel = append(sel, "encode(bin, 'hex')")
				} else {
					sel = append(sel, c.name)
				}
			}
			wantRows := fmt.Sprint([][]string{charsetValues(1, true), charsetValues(3, true)})
			waitFor(t, 30*time.Second, "PostgreSQL holds the rows", func() (bool, string) {
				got := fmt.Sprint(w.pgQuery("SELECT id::text, " + strings.Join(sel, ", ") + " FROM public.chars t ORDER BY t.id"))
				return got == wantRows, got + "\nwant " + wantRows
			})
		})
	}
}

// charsetValues is row id's values as text, b's bytes in hex: id first.
func charsetValues(id int, b bool) []string {
	out := []string{fmt.Sprint(id)}
	for _, c := range charsetColumns {
		v := c.a
		if b {
			v = c.b
		}
		out = append(out, v)
	}
	return out
}

// charsetRow is row id as an SQL tuple.
func charsetRow(id int, b bool) string {
	vals := charsetValues(id, b)
	for i, c := range charsetColumns {
		vals[i+1] = charsetLiteral(c.name, vals[i+1])
	}
	return "(" + strings.Join(vals, ", ") + ")"
}

// charsetSet sets every column to its a or b value.
func charsetSet(b bool) string {
	vals := charsetValues(0, b)
	var set []string
	for i, c := range charsetColumns {
		set = append(set, c.name+" = "+charsetLiteral(c.name, vals[i+1]))
	}
	return strings.Join(set, ", ")
}

func charsetLiteral(col, v string) string {
	if col == "bin" {
		return "X'" + v + "'"
	}
	return "'" + v + "'"
}

// charsetJSON is row id as Debezium writes it: text as JSON strings,
// bytes in base64.
func charsetJSON(id int, b bool) string {
	vals := charsetValues(id, b)
	m := map[string]any{"id": id}
	for i, c := range charsetColumns {
		m[c.name] = vals[i+1]
		if c.name == "bin" {
			raw, _ := hex.DecodeString(vals[i+1])
			m[c.name] = base64.StdEncoding.EncodeToString(raw)
		}
	}
	out, _ := json.Marshal(m)
	return string(out)
}

// events reads a CDC topic as lines "KEY OP BEFORE -> AFTER" (the key's
// id, rows as JSON with sorted fields) and "KEY tombstone".
func (w *world) events(topic string) []string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts, err := kafkaconn.Options(schema.Datacenter{Kafka: schema.Kafka{Brokers: []string{w.kafka.Addr()}}})
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	err = kafkaconn.ReadToEnd(ctx, opts, topic, nil, func(r *kgo.Record) {
		var key struct{ ID int }
		if err := json.Unmarshal(r.Key, &key); err != nil {
			w.t.Fatalf("key %q: %v", r.Key, err)
		}
		if r.Value == nil {
			out = append(out, fmt.Sprintf("%d tombstone", key.ID))
			return
		}
		var e struct {
			Op            string
			Before, After map[string]any
		}
		if err := json.Unmarshal(r.Value, &e); err != nil {
			w.t.Fatalf("value %q: %v", r.Value, err)
		}
		b, _ := json.Marshal(e.Before)
		a, _ := json.Marshal(e.After)
		out = append(out, fmt.Sprintf("%d %s %s -> %s", key.ID, e.Op, b, a))
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}
