package binlog

import (
	"fmt"

	"github.com/go-mysql-org/go-mysql/client"
)

// KeyColumns lists the columns that identify a row of a table, as Debezium
// keys its events: the primary key or, in a table without one, the first
// unique index whose columns are all NOT NULL, in the server's index order
// (the order SHOW CREATE TABLE shows), as Debezium's MySQL and MariaDB
// connectors take it. None for a table with neither: its events have a
// null key.
func KeyColumns(c *client.Conn, db, table string) ([]string, error) {
	r, err := c.Execute("SELECT INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, NULLABLE FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", db, table)
	if err != nil {
		return nil, fmt.Errorf("reading the indexes of %s.%s: %w", db, table, err)
	}
	defer r.Close()
	type index struct {
		cols   []string
		usable bool // unique, every column NOT NULL
	}
	var order []string
	indexes := map[string]*index{}
	for i := range r.Values {
		name := GetString(r, i, 0)
		nonUnique, _ := r.GetInt(i, 1)
		seq, _ := r.GetInt(i, 2)
		col := GetString(r, i, 3)
		ix := indexes[name]
		if ix == nil {
			ix = &index{usable: nonUnique == 0}
			indexes[name] = ix
			order = append(order, name)
		}
		for int64(len(ix.cols)) < seq {
			ix.cols = append(ix.cols, "")
		}
		if seq >= 1 {
			ix.cols[seq-1] = col
		}
		if col == "" || GetString(r, i, 4) == "YES" {
			ix.usable = false
		}
	}
	if pk := indexes["PRIMARY"]; pk != nil {
		return pk.cols, nil
	}
	for _, name := range order {
		if ix := indexes[name]; ix.usable {
			return ix.cols, nil
		}
	}
	return nil, nil
}
