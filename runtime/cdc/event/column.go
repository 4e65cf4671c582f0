// Package event turns MySQL/MariaDB rows into Debezium MySQL connector
// change events, byte for byte as Debezium's JsonConverter writes them with
// schemas.enable=false, decimal.handling.mode=string,
// time.precision.mode=adaptive_time_microseconds,
// binary.handling.mode=base64 and the defaults otherwise (tombstones on
// delete, bigint.unsigned.handling.mode=long).
//
// Rows come from two places: binlog row events (go-mysql's decoded values)
// and the initial load's SELECTs (the text protocol's bytes). Both are
// normalised here, so a row reads the same from either.
package event

import (
	"fmt"
	"slices"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Kind is how a column's values are written.
type Kind uint8

// Column kinds.
const (
	KindUnknown   Kind = iota
	KindInt            // TINYINT .. BIGINT: a JSON number
	KindDecimal        // DECIMAL: a string with the column's scale
	KindFloat          // FLOAT: FLOAT32, as Java prints a float
	KindDouble         // DOUBLE: FLOAT64, as Java prints a double
	KindBool           // BIT(1): true/false
	KindBits           // BIT(n>1): base64 of the bits, little-endian, (n+7)/8 bytes
	KindDate           // DATE: days since 1970-01-01
	KindTime           // TIME: microseconds (io.debezium.time.MicroTime)
	KindDatetime       // DATETIME: epoch millis (fsp 0-3) or micros (fsp 4-6)
	KindTimestamp      // TIMESTAMP: ISO-8601 UTC string (io.debezium.time.ZonedTimestamp)
	KindYear           // YEAR: a number
	KindString         // CHAR, VARCHAR, TEXT: a string
	KindBytes          // BINARY, VARBINARY, BLOB: base64
	KindEnum           // ENUM: the member's name
	KindSet            // SET: the members' names joined by ","
	KindJSON           // JSON: the JSON text as a string (io.debezium.data.Json)
)

var kindNames = [...]string{"unknown", "int", "decimal", "float", "double", "bool", "bits", "date", "time", "datetime", "timestamp", "year", "string", "bytes", "enum", "set", "json"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Column describes one column of a captured table.
type Column struct {
	Name     string
	Kind     Kind
	Type     byte // the MySQL type code, for messages
	Unsigned bool
	// Size is the fractional seconds precision of TIME, DATETIME and
	// TIMESTAMP, the bit count of BIT, and the byte length of a BINARY(n)
	// (whose values Debezium pads with zero bytes to n).
	Size int
	Pad  bool // BINARY(n): pad values to Size bytes
	// Widen marks a FLOAT(M,D): Debezium's default writes its float value
	// as a double (FLOAT64), 5.61 as 5.610000133514404.
	Widen bool
	// RawYears writes a DATE's or DATETIME's years 0-99 as stored. Unset,
	// they are adjusted as Debezium's enable.time.adjuster (default true)
	// and MySQL's two-digit years do: 0-69 to 2000-2069, 70-99 to 1970-1999.
	RawYears bool
	Members  []string // ENUM and SET members, in declaration order
	Nullable bool
	// Charset is the character set of a binlog column's text ("latin1",
	// "utf16", ...), whose bytes are decoded to UTF-8 by it; "" where the
	// bytes are UTF-8 already: the initial load's, which the session asks
	// the server to convert to utf8mb4. A charset ferry cannot decode
	// fails the value, which goes to the dead letter topic.
	Charset string
}

// Table is a captured table as the converter sees it: its columns in
// order and the indexes of its primary key columns.
type Table struct {
	DB      string
	Name    string
	Columns []Column
	Key     []int
}

// FullName is "db.table".
func (t *Table) FullName() string { return t.DB + "." + t.Name }

// binaryCollation is the collation id of the binary character set.
const binaryCollation = 63

// notFixedDec is the decimals a result set gives a FLOAT or DOUBLE declared
// without them (MySQL's NOT_FIXED_DEC, 31; MariaDB's is 39).
const notFixedDec = 31

// MySQL's limits on column metadata: BIT(64), BINARY(255) and six
// fractional second digits. Metadata beyond them (a corrupt or hostile
// server's) is clamped, so that it cannot make the converter allocate
// without bound.
const (
	maxBits   = 64
	maxBinary = 255
	maxFSP    = 6
)

// ColumnFromBinlog builds a column from a TABLE_MAP event's type code and
// metadata and from its optional (binlog_row_metadata=FULL) metadata:
// the column's collation, which cs names the character set of (nil: take
// text as UTF-8), and its ENUM or SET members in that character set.
func ColumnFromBinlog(name string, tp byte, meta uint16, unsigned bool, collation uint64, cs Charsets, members []string, nullable bool) (Column, error) {
	c := Column{Name: name, Type: tp, Unsigned: unsigned, Members: members, Nullable: nullable}
	c.kindFromBinlog(meta, collation)
	if c.Kind == KindString || c.Kind == KindEnum || c.Kind == KindSet {
		if set, ok := cs[collation]; ok && !utf8Charsets[set] {
			c.Charset = set
		} else if !ok && cs != nil {
			c.Charset = fmt.Sprintf("of collation %d", collation)
		}
	}
	return c, decodeMembers(&c)
}

// kindFromBinlog sets the column's kind and size from its type code,
// metadata and collation.
func (c *Column) kindFromBinlog(meta uint16, collation uint64) {
	tp := c.Type
	switch tp {
	case mysql.MYSQL_TYPE_STRING:
		// ENUM and SET travel as STRING with their real type in meta's
		// high byte; so does a CHAR/BINARY's length.
		if meta >= 256 {
			b0, b1 := byte(meta>>8), byte(meta&0xFF)
			switch b0 {
			case mysql.MYSQL_TYPE_ENUM:
				c.Kind = KindEnum
				return
			case mysql.MYSQL_TYPE_SET:
				c.Kind = KindSet
				return
			}
			if b0&0x30 != 0x30 {
				c.Size = int(uint16(b1) | (uint16((b0&0x30)^0x30) << 4))
			} else {
				c.Size = int(b1)
			}
		} else {
			c.Size = int(meta)
		}
		if collation == binaryCollation {
			c.Kind, c.Pad = KindBytes, true
		} else {
			c.Kind = KindString
		}
		return
	case mysql.MYSQL_TYPE_ENUM:
		c.Kind = KindEnum
		return
	case mysql.MYSQL_TYPE_SET:
		c.Kind = KindSet
		return
	case mysql.MYSQL_TYPE_BIT:
		c.Size = min(int((meta>>8)*8+meta&0xFF), maxBits)
		c.Kind = KindBits
		if c.Size == 1 {
			c.Kind = KindBool
		}
		return
	case mysql.MYSQL_TYPE_TIME2, mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_TIMESTAMP2:
		c.Size = min(int(meta), maxFSP)
	}
	c.Kind = kindOf(tp, collation)
}

// kindOf maps a type code (binlog or result set) to a kind.
func kindOf(tp byte, collation uint64) Kind {
	switch tp {
	case mysql.MYSQL_TYPE_TINY, mysql.MYSQL_TYPE_SHORT, mysql.MYSQL_TYPE_INT24, mysql.MYSQL_TYPE_LONG, mysql.MYSQL_TYPE_LONGLONG:
		return KindInt
	case mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL:
		return KindDecimal
	case mysql.MYSQL_TYPE_FLOAT:
		return KindFloat
	case mysql.MYSQL_TYPE_DOUBLE:
		return KindDouble
	case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
		return KindDate
	case mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2:
		return KindTime
	case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2:
		return KindDatetime
	case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
		return KindTimestamp
	case mysql.MYSQL_TYPE_YEAR:
		return KindYear
	case mysql.MYSQL_TYPE_JSON:
		return KindJSON
	case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_STRING,
		mysql.MYSQL_TYPE_BLOB, mysql.MYSQL_TYPE_TINY_BLOB, mysql.MYSQL_TYPE_MEDIUM_BLOB, mysql.MYSQL_TYPE_LONG_BLOB:
		if collation == binaryCollation {
			return KindBytes
		}
		return KindString
	case mysql.MYSQL_TYPE_GEOMETRY:
		return KindBytes
	}
	return KindUnknown
}

// ColumnFromField builds a column from a result set's field, as the
// initial load's SELECT returns it. ENUM and SET come back as strings with
// a flag, BINARY(n) with the binary charset; the text protocol renders
// every value as text, which Value parses per kind.
func ColumnFromField(f *mysql.Field) Column {
	c := Column{
		Name:     string(f.Name),
		Type:     f.Type,
		Unsigned: f.Flag&mysql.UNSIGNED_FLAG != 0,
		Nullable: f.Flag&mysql.NOT_NULL_FLAG == 0,
	}
	switch {
	case f.Flag&mysql.ENUM_FLAG != 0:
		c.Kind = KindEnum
		return c
	case f.Flag&mysql.SET_FLAG != 0:
		c.Kind = KindSet
		return c
	}
	switch f.Type {
	case mysql.MYSQL_TYPE_BIT:
		c.Size = int(min(f.ColumnLength, maxBits))
		c.Kind = KindBits
		if c.Size == 1 {
			c.Kind = KindBool
		}
		return c
	case mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_TIMESTAMP:
		c.Size = min(int(f.Decimal), maxFSP)
	case mysql.MYSQL_TYPE_STRING:
		if f.Charset == binaryCollation && f.ColumnLength <= maxBinary {
			c.Size, c.Pad = int(f.ColumnLength), true
		}
	case mysql.MYSQL_TYPE_FLOAT:
		c.Widen = f.Decimal < notFixedDec // FLOAT(M,D) has D decimals
	}
	c.Kind = kindOf(f.Type, uint64(f.Charset))
	return c
}

// ColumnIndexes finds the named columns (case-insensitively, as MySQL
// names them), in the order given.
func (t *Table) ColumnIndexes(names []string) ([]int, error) {
	out := make([]int, 0, len(names))
	for _, n := range names {
		i := slices.IndexFunc(t.Columns, func(c Column) bool { return strings.EqualFold(c.Name, n) })
		if i < 0 {
			return nil, fmt.Errorf("table %s has no column %q", t.FullName(), n)
		}
		out = append(out, i)
	}
	return out, nil
}

// KeyNames is the primary key's column names joined by ",".
func (t *Table) KeyNames() string {
	names := make([]string, len(t.Key))
	for i, k := range t.Key {
		names[i] = t.Columns[k].Name
	}
	return strings.Join(names, ",")
}
