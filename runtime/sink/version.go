package sink

import (
	"fmt"
	"strconv"
	"strings"
)

// Version orders the changes of one source: the binlog file's index (the
// number after the last "." of its name), the position of the rows event
// in it and the row's index in the event, plus one. Within one server's
// binlog stream this is commit order, whatever the GTIDs say (GTIDs of
// several MariaDB domains, or MySQL's UUIDs, do not order transactions).
//
// A position P (the boundary between two events, as SHOW MASTER STATUS
// gives it) has Row 0: every event before P is older than P's version,
// every event at or after P newer. A snapshot row of the CDC job's own
// initial load has the zero version: it is written only where the key
// has no version yet (its value is the one the key's earlier events
// left).
//
// As a number (the _ferry_version columns, numeric(38,0)):
// file*10^24 + pos*10^12 + row.
type Version struct {
	File uint64
	Pos  uint64
	Row  uint64
}

// EventVersion is the version of the row-th row of the rows event at pos
// in file.
func EventVersion(file string, pos uint64, row int) (Version, error) {
	idx, err := FileIndex(file)
	if err != nil {
		return Version{}, err
	}
	return Version{File: idx, Pos: pos, Row: uint64(row) + 1}, nil
}

// PositionVersion is the version of a binlog position: newer than every
// event before it, older than every event at or after it.
func PositionVersion(file string, pos uint64) (Version, error) {
	idx, err := FileIndex(file)
	if err != nil {
		return Version{}, err
	}
	return Version{File: idx, Pos: pos}, nil
}

// FileIndex is the number of a binlog file name: "binlog.000042" is 42.
func FileIndex(file string) (uint64, error) {
	i := strings.LastIndexByte(file, '.')
	n, err := strconv.ParseUint(file[i+1:], 10, 64)
	if i < 0 || err != nil {
		return 0, fmt.Errorf("binlog file name %q does not end in a number", file)
	}
	return n, nil
}

// Compare returns -1, 0 or 1 as v is older than, the same as or newer
// than w.
func (v Version) Compare(w Version) int {
	switch {
	case v.File != w.File:
		return cmp(v.File, w.File)
	case v.Pos != w.Pos:
		return cmp(v.Pos, w.Pos)
	}
	return cmp(v.Row, w.Row)
}

func cmp(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// String is the version as a decimal number.
func (v Version) String() string {
	if v.File == 0 && v.Pos == 0 {
		return strconv.FormatUint(v.Row, 10)
	}
	if v.File == 0 {
		return fmt.Sprintf("%d%012d", v.Pos, v.Row)
	}
	return fmt.Sprintf("%d%012d%012d", v.File, v.Pos, v.Row)
}
