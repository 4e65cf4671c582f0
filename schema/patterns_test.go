package schema_test

import (
	"regexp"
	"testing"

	"github.com/ferry-pipelines/ferry/schema"
)

func TestPattern(t *testing.T) {
	for def, cases := range map[string]map[string]bool{
		"#Name":      {"dc1": true, "Dc1": false, "1dc": false},
		"#Topic":     {"orders.events": true, "a b": false},
		"#TableName": {"trading.orders": true, "trading": false, "a/b.c": false, "a.b.c": false},
		"#EnvName":   {"TRADING_DB_PASSWORD": true, "1X": false},
		"#Duration":  {"300ms": true, "1h30m": true, "soon": false},
	} {
		re := regexp.MustCompile(schema.Pattern(def))
		for s, want := range cases {
			if got := re.MatchString(s); got != want {
				t.Errorf("%s matches %q: %v, want %v", def, s, got, want)
			}
		}
	}
}

func TestBounds(t *testing.T) {
	for path, want := range map[string][2]int64{
		"#Mirror.partitions":              {1, 100000},
		"#Tier":                           {1, 4},
		"#CDCTable.rate":                  {0, 0},
		"#CDCSource.mysql.serverID":       {1, 4294967295},
		"#CDCSource.snapshot.parallelism": {1, 64},
	} {
		if lo, hi := schema.Bounds(path); lo != want[0] || hi != want[1] {
			t.Errorf("%s: [%d, %d], want %v", path, lo, hi, want)
		}
	}
}
