package event_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/ferry-pipelines/ferry/runtime/cdc/event"
)

// fuzzValue is the Go value of kind k that go-mysql could hand the
// converter: what it decodes from a binlog row, or the text protocol's
// bytes.
func fuzzValue(k uint8, raw []byte, n int64, f float64) any {
	switch k % 16 {
	case 0:
		return nil
	case 1:
		return int8(n)
	case 2:
		return int16(n)
	case 3:
		return int32(n)
	case 4:
		return n
	case 5:
		return int(n)
	case 6:
		return uint8(n)
	case 7:
		return uint16(n)
	case 8:
		return uint32(n)
	case 9:
		return uint64(n)
	case 10:
		return float32(f)
	case 11:
		return f
	case 12:
		return string(raw)
	case 13:
		return raw
	case 14:
		return time.Unix(n%(1<<40), 0)
	}
	return struct{}{} // a type go-mysql never gives: must be an error
}

// FuzzValue converts arbitrary values of columns with arbitrary types and
// metadata, from the binlog's TABLE_MAP and from a result set's fields
// (seeds: testdata/fuzz/FuzzValue, the type goldens' columns and values).
// It must never panic; a value converts to valid JSON in UTF-8 or fails
// with an error (the row goes to the dead letter topic); and a change of a
// table with the column as its key encodes into records whose keys and
// values are valid JSON.
func FuzzValue(f *testing.F) {
	fuzzCharsets := event.Charsets{5: "latin1", 8: "latin1", 33: "utf8mb3", 35: "ucs2", 45: "utf8mb4", 51: "cp1251", 54: "utf16", 56: "utf16le", 60: "utf32", 63: "binary", 83: "utf8mb3", 28: "gbk"}
	f.Fuzz(func(t *testing.T, fromField bool, tp byte, meta uint16, length uint32, flag uint16, collation uint16, members string, nullable bool,
		vk uint8, raw []byte, n int64, fl float64, op byte, rowLen uint8) {
		var c event.Column
		var memberList []string
		if members != "" {
			memberList = strings.Split(members, ",")
		}
		if fromField {
			c = event.ColumnFromField(&mysql.Field{Name: []byte("c"), Type: tp, Flag: flag, Charset: collation, ColumnLength: length, Decimal: byte(meta)})
			c.Members = memberList
		} else {
			var err error
			if c, err = event.ColumnFromBinlog("c", tp, meta, flag&1 != 0, uint64(collation), fuzzCharsets, memberList, nullable); err != nil {
				return // members not in the column's charset: the table map is refused
			}
		}
		v := fuzzValue(vk, raw, n, fl)
		out, err := event.AppendValue(nil, &c, v)
		if err == nil {
			checkJSON(t, "value", out)
		} else if msg := err.Error(); msg == "" || strings.Contains(msg, "\n") {
			t.Fatalf("error %q is not one line", msg)
		}

		tbl := &event.Table{DB: "db", Name: "t", Columns: []event.Column{c, {Name: "note", Kind: event.KindString}}, Key: []int{0}}
		row := []any{v, "x"}[:min(int(rowLen%3), 2)]
		ch := &event.Change{Op: op, Before: row, After: row, Source: event.Source{Name: "p", Time: time.Unix(n%(1<<40), 0), File: "binlog.000001"}}
		recs, err := tbl.Encode(ch, time.Unix(1700000000, 0))
		if err != nil {
			return
		}
		for _, r := range recs {
			if r.Key != nil {
				checkJSON(t, "key", r.Key)
			}
			if r.Value != nil {
				checkJSON(t, "event", r.Value)
			}
		}
	})
}

func checkJSON(t *testing.T, what string, b []byte) {
	t.Helper()
	if !utf8.Valid(b) || !json.Valid(b) {
		t.Fatalf("%s %q is not valid JSON in UTF-8", what, b)
	}
}
