package sink_test

import (
	"math/big"
	"testing"

	"github.com/ferry-pipelines/ferry/runtime/sink"
)

// TestVersionOrder checks that versions order binlog events and positions
// as the binlog does, and that their numbers (what PostgreSQL compares)
// order the same way.
func TestVersionOrder(t *testing.T) {
	ev := func(file string, pos uint64, row int) sink.Version {
		v, err := sink.EventVersion(file, pos, row)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	at := func(file string, pos uint64) sink.Version {
		v, err := sink.PositionVersion(file, pos)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// In binlog order: each entry is older than the next.
	ordered := []struct {
		name string
		v    sink.Version
	}{
		{"snapshot row of the CDC load", sink.Version{}},
		{"first event", ev("binlog.000001", 4, 0)},
		{"second row of the event", ev("binlog.000001", 4, 1)},
		{"row 5000 of the event", ev("binlog.000001", 4, 5000)},
		{"position after the event", at("binlog.000001", 900)},
		{"event at that position", ev("binlog.000001", 900, 0)},
		{"event far on", ev("binlog.000001", 4_000_000_000, 7)},
		{"position at the start of the next file", at("binlog.000002", 4)},
		{"event in the next file", ev("binlog.000002", 4, 0)},
		{"event in file 1000000", ev("binlog.1000000", 256, 3)},
	}
	for i := 1; i < len(ordered); i++ {
		a, b := ordered[i-1], ordered[i]
		if a.v.Compare(b.v) >= 0 || b.v.Compare(a.v) <= 0 {
			t.Errorf("%s (%s) is not older than %s (%s)", a.name, a.v, b.name, b.v)
		}
		x, _ := new(big.Int).SetString(a.v.String(), 10)
		y, _ := new(big.Int).SetString(b.v.String(), 10)
		if x == nil || y == nil || x.Cmp(y) >= 0 {
			t.Errorf("as numbers, %s (%s) is not below %s (%s)", a.name, a.v, b.name, b.v)
		}
	}
	if _, err := sink.EventVersion("binlog", 4, 0); err == nil {
		t.Error("a binlog file name without a number was accepted")
	}
}
