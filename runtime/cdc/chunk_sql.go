package cdc

// SQL text of the initial load: quoted names, key literals and tuples.

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/ferry-pipelines/ferry/runtime/cdc/event"
)

func qid(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func qname(db, tbl string) string { return qid(db) + "." + qid(tbl) }

func colList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = qid(c)
	}
	return strings.Join(q, ", ")
}

// literal renders a key value (text) as an SQL literal of its kind.
func literal(k event.Kind, v []byte) string {
	switch k {
	case event.KindInt, event.KindDecimal, event.KindFloat, event.KindDouble, event.KindYear:
		ok := len(v) > 0
		for _, b := range v {
			if !(b >= '0' && b <= '9' || b == '-' || b == '.' || b == 'e' || b == 'E' || b == '+') {
				ok = false
			}
		}
		if ok {
			return string(v)
		}
	case event.KindBytes, event.KindBits:
		return "X'" + hex.EncodeToString(v) + "'"
	}
	return "'" + mysql.Escape(string(v)) + "'"
}

func tuple(kinds []event.Kind, vals [][]byte) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = literal(kinds[i], v)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func keyText(vals [][]byte) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = string(v)
	}
	return strings.Join(parts, ",")
}

func textOf(v any) []byte {
	switch x := v.(type) {
	case nil:
		return nil
	case int64:
		return strconv.AppendInt(nil, x, 10)
	case uint64:
		return strconv.AppendUint(nil, x, 10)
	case float64:
		return strconv.AppendFloat(nil, x, 'g', -1, 64)
	case []byte:
		return append([]byte(nil), x...)
	case string:
		return []byte(x)
	}
	return []byte(fmt.Sprint(v))
}
