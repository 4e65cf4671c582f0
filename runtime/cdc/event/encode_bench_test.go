package event

import (
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
)

func benchTable() (*Table, []any) {
	t := &Table{DB: "trading", Name: "orders", Key: []int{0}, Columns: []Column{
		{Name: "id", Kind: KindInt, Type: mysql.MYSQL_TYPE_LONG},
		{Name: "note", Kind: KindString, Type: mysql.MYSQL_TYPE_VARCHAR},
		{Name: "qty", Kind: KindInt, Type: mysql.MYSQL_TYPE_LONG},
		{Name: "price", Kind: KindDecimal, Type: mysql.MYSQL_TYPE_NEWDECIMAL},
		{Name: "at", Kind: KindDatetime, Size: 6, Type: mysql.MYSQL_TYPE_DATETIME2},
	}}
	row := []any{int64(123456), []byte("row 123456"), int64(56), []byte("17636.5714"), []byte("2024-01-02 03:04:05.123456")}
	return t, row
}

// BenchmarkEncodeRead is one loaded row's key and envelope, formatted
// whole (AppendEnvelope) or with the chunk's shared tail (AppendWithTail).
func BenchmarkEncodeRead(b *testing.B) {
	t, row := benchTable()
	src := Source{Name: "trading", Time: time.Now(), Snapshot: SnapshotTrue, File: "binlog.000001", Pos: 1234}
	now := time.Now()
	b.Run("envelope", func(b *testing.B) {
		buf := make([]byte, 0, 4096)
		for i := 0; i < b.N; i++ {
			buf, _ = t.AppendKey(buf[:0], row)
			buf, _ = t.AppendEnvelope(buf, &Change{Op: OpRead, After: row, Source: src}, now)
		}
	})
	b.Run("tail", func(b *testing.B) {
		tail := t.Tail(OpRead, &src, now)
		buf := make([]byte, 0, 4096)
		for i := 0; i < b.N; i++ {
			buf, _ = t.AppendKey(buf[:0], row)
			buf, _ = t.AppendWithTail(buf, row, tail)
		}
	})
}

func TestTailSameBytes(t *testing.T) {
	tbl, row := benchTable()
	src := Source{Name: "trading", Time: time.Unix(1704164645, 0), Snapshot: SnapshotTrue, File: "binlog.000001", Pos: 1234}
	now := time.UnixMicro(1704164645123456)
	a, err := tbl.AppendEnvelope(nil, &Change{Op: OpRead, After: row, Source: src}, now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tbl.AppendWithTail(nil, row, tbl.Tail(OpRead, &src, now))
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Fatalf("tail gives\n%s\nenvelope gives\n%s", b, a)
	}
}
