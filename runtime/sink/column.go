package sink

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/cdc/event"
)

// Column is one column of a sunk table: its source name and MySQL type,
// the target name and the PostgreSQL type it maps to.
type Column struct {
	Source   string     // the MySQL column
	Target   string     // the PostgreSQL column
	Kind     event.Kind // how its Debezium value is written
	MySQL    string     // the MySQL COLUMN_TYPE, for messages
	PG       string     // the PostgreSQL type
	Unsigned bool
	Size     int // BIT width; DATETIME/TIMESTAMP/TIME fraction digits
	Key      bool
}

// Columns reads a table's columns and primary key from the source's
// information_schema and maps them to PostgreSQL types (docs/sink.md,
// "Types", has the table). renames maps source to target names.
func Columns(c *client.Conn, db, table string, renames map[string]string) ([]Column, error) {
	r, err := c.Execute(`SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, COALESCE(NUMERIC_PRECISION, 0), COALESCE(NUMERIC_SCALE, 0),
		COALESCE(DATETIME_PRECISION, 0), COLUMN_KEY
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, db, table)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s.%s: %w", db, table, err)
	}
	defer r.Close()
	if r.RowNumber() == 0 {
		return nil, fmt.Errorf("table %s.%s not found on the source (or the user may not read it)", db, table)
	}
	jsonCols, err := mariaDBJSONColumns(c, db, table)
	if err != nil {
		return nil, err
	}
	cols := make([]Column, 0, r.RowNumber())
	for i := 0; i < r.RowNumber(); i++ {
		name, _ := r.GetString(i, 0)
		dataType, _ := r.GetString(i, 1)
		colType, _ := r.GetString(i, 2)
		prec, _ := r.GetInt(i, 3)
		scale, _ := r.GetInt(i, 4)
		fsp, _ := r.GetInt(i, 5)
		key, _ := r.GetString(i, 6)
		name, dataType, colType = strings.Clone(name), strings.ToLower(dataType), strings.ToLower(strings.Clone(colType))
		if jsonCols[name] {
			dataType = "json"
		}
		col := Column{Source: name, Target: name, MySQL: colType, Unsigned: strings.Contains(colType, "unsigned"), Key: key == "PRI"}
		if t, ok := renames[name]; ok {
			col.Target = t
		}
		if err := col.mapType(dataType, colType, int(prec), int(scale), int(fsp)); err != nil {
			return nil, fmt.Errorf("%s.%s.%s: %w", db, table, name, err)
		}
		cols = append(cols, col)
	}
	return cols, nil
}

var jsonValid = regexp.MustCompile("(?i)json_valid\\(`([^`]+)`\\)")

// mariaDBJSONColumns finds MariaDB's JSON columns: LONGTEXT with a
// json_valid check (MySQL reports DATA_TYPE json itself).
func mariaDBJSONColumns(c *client.Conn, db, table string) (map[string]bool, error) {
	out := map[string]bool{}
	r, err := c.Execute("SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?", db, table)
	if err != nil {
		return out, nil // MySQL before 8.0.16 has no such view, and no MariaDB JSON either
	}
	defer r.Close()
	for i := 0; i < r.RowNumber(); i++ {
		clause, _ := r.GetString(i, 0)
		for _, m := range jsonValid.FindAllStringSubmatch(clause, -1) {
			out[m[1]] = true
		}
	}
	return out, nil
}

var charLength = regexp.MustCompile(`^(?:var)?char\((\d+)\)`)

// mapType sets the kind and PostgreSQL type of a MySQL type.
func (c *Column) mapType(dataType, colType string, prec, scale, fsp int) error {
	c.Size = fsp
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		c.Kind = event.KindInt
		c.PG = map[string]string{"tinyint": "smallint", "smallint": "smallint", "mediumint": "integer", "int": "integer", "integer": "integer", "bigint": "bigint"}[dataType]
		if c.Unsigned {
			c.PG = map[string]string{"tinyint": "smallint", "smallint": "integer", "mediumint": "integer", "int": "bigint", "integer": "bigint", "bigint": "numeric(20)"}[dataType]
		}
	case "decimal", "numeric":
		c.Kind, c.PG = event.KindDecimal, fmt.Sprintf("numeric(%d,%d)", prec, scale)
	case "float":
		c.Kind, c.PG = event.KindFloat, "real"
	case "double", "real":
		c.Kind, c.PG = event.KindDouble, "double precision"
	case "bit":
		c.Size = prec
		if c.Size == 1 {
			c.Kind, c.PG = event.KindBool, "boolean"
		} else {
			c.Kind, c.PG = event.KindBits, fmt.Sprintf("bit(%d)", prec)
		}
	case "date":
		c.Kind, c.PG = event.KindDate, "date"
	case "time":
		// MySQL's TIME is a duration (-838:59:59 to 838:59:59), wider than
		// PostgreSQL's time of day.
		c.Kind, c.PG = event.KindTime, "interval"
	case "datetime":
		c.Kind, c.PG = event.KindDatetime, fmt.Sprintf("timestamp(%d)", fsp)
	case "timestamp":
		c.Kind, c.PG = event.KindTimestamp, fmt.Sprintf("timestamptz(%d)", fsp)
	case "year":
		c.Kind, c.PG = event.KindYear, "smallint"
	case "char", "varchar":
		c.Kind, c.PG = event.KindString, "text"
		if m := charLength.FindStringSubmatch(colType); m != nil {
			c.PG = "varchar(" + m[1] + ")"
		}
	case "tinytext", "text", "mediumtext", "longtext":
		c.Kind, c.PG = event.KindString, "text"
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		c.Kind, c.PG = event.KindBytes, "bytea"
	case "enum":
		c.Kind, c.PG = event.KindEnum, "text"
	case "set":
		c.Kind, c.PG = event.KindSet, "text"
	case "json":
		c.Kind, c.PG = event.KindJSON, "jsonb"
	default:
		return fmt.Errorf("MySQL type %s has no PostgreSQL mapping in ferry", colType)
	}
	return nil
}

var twoTo64 = new(big.Int).Lsh(big.NewInt(1), 64)

// Text turns a column's Debezium JSON value into PostgreSQL's text input
// for the column's type; nil is NULL.
func (c *Column) Text(raw json.RawMessage) (*string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	s, err := c.text(raw)
	if err != nil {
		return nil, fmt.Errorf("column %s (%s): value %.40s: %w", c.Source, c.MySQL, raw, err)
	}
	return &s, nil
}

func (c *Column) text(raw json.RawMessage) (string, error) {
	switch c.Kind {
	case event.KindInt, event.KindYear:
		n := string(raw)
		if c.Unsigned && c.PG == "numeric(20)" && strings.HasPrefix(n, "-") {
			// Debezium writes BIGINT UNSIGNED as a Java long: wrap back.
			v, ok := new(big.Int).SetString(n, 10)
			if !ok {
				return "", fmt.Errorf("not an integer")
			}
			return v.Add(v, twoTo64).String(), nil
		}
		if _, err := strconv.ParseInt(n, 10, 64); err != nil {
			return "", fmt.Errorf("not an integer")
		}
		return n, nil
	case event.KindFloat, event.KindDouble:
		if raw[0] == '"' { // "NaN", "Infinity", "-Infinity"
			return unquote(raw)
		}
		return string(raw), nil
	case event.KindBool:
		return string(raw), nil // true, false
	case event.KindBits:
		b, err := base64Value(raw)
		if err != nil {
			return "", err
		}
		// Little-endian bytes to a bit string, most significant bit first.
		out := make([]byte, c.Size)
		for i := 0; i < c.Size; i++ {
			bit := c.Size - 1 - i
			out[i] = '0'
			if bit/8 < len(b) && b[bit/8]&(1<<(bit%8)) != 0 {
				out[i] = '1'
			}
		}
		return string(out), nil
	case event.KindDate:
		days, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return "", err
		}
		return time.Unix(days*86400, 0).UTC().Format("2006-01-02"), nil
	case event.KindTime:
		us, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return "", err
		}
		return strconv.FormatInt(us, 10) + " microseconds", nil
	case event.KindDatetime:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return "", err
		}
		t := time.UnixMilli(n)
		if c.Size > 3 {
			t = time.UnixMicro(n)
		}
		return t.UTC().Format("2006-01-02 15:04:05.999999"), nil
	case event.KindBytes:
		b, err := base64Value(raw)
		if err != nil {
			return "", err
		}
		return `\x` + hex.EncodeToString(b), nil
	case event.KindDecimal, event.KindTimestamp, event.KindString, event.KindEnum, event.KindSet, event.KindJSON:
		return unquote(raw)
	}
	return "", fmt.Errorf("kind %s is not supported", c.Kind)
}

func unquote(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("want a JSON string")
	}
	return s, nil
}

func base64Value(raw json.RawMessage) ([]byte, error) {
	s, err := unquote(raw)
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(s)
}

// keyColumns returns the key's columns in key order: the declared key's
// (the table's key: in the definitions) or else the events' key, the
// primary key or a unique index of NOT NULL columns (binlog.KeyColumns).
func keyColumns(c *client.Conn, db, table string, cols []Column, declared []string) ([]int, error) {
	names := declared
	if len(names) == 0 {
		var err error
		if names, err = binlog.KeyColumns(c, db, table); err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("table %s.%s has no primary key nor unique index of NOT NULL columns: a sink applies changes by key; name the columns that identify a row with key: [...] on the table, or add a primary key", db, table)
		}
	}
	var key []int
	for _, name := range names {
		j := slices.IndexFunc(cols, func(c Column) bool { return strings.EqualFold(c.Source, name) })
		if j < 0 {
			return nil, fmt.Errorf("key: table %s.%s has no column %q", db, table, name)
		}
		key = append(key, j)
	}
	return key, nil
}
