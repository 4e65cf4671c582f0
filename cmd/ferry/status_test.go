package main

import (
	"bytes"
	"testing"

	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// The initial loads follow the jobs: rows done of the estimate, the rate
// and the time still needed at it, or "done".
func TestPrintLoads(t *testing.T) {
	jobs := []metrics.Status{{
		ID: "cdc:trading-db",
		Parts: map[string]metrics.PartStatus{
			"trading.orders": {Done: 250_000, Estimate: 1_000_000, RowsPerSec: 50_000, ETASeconds: 15},
			"trading.fills":  {Done: 1200, Estimate: 1200, RowsPerSec: 80_000},
			"trading.live":   {},
		},
	}, {ID: "mirror:audit.log", Parts: map[string]metrics.PartStatus{"0": {}}}}
	var b bytes.Buffer
	printLoads(&b, jobs)
	want := `
INITIAL LOAD    TABLE           ROWS    ESTIMATE  DONE    ROWS/S  ETA
cdc:trading-db  trading.fills   1200    1200      100.0%  80000   done
cdc:trading-db  trading.orders  250000  1000000   25.0%   50000   15s
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	printLoads(&b, jobs[1:])
	if b.Len() != 0 {
		t.Errorf("no load, yet printed:\n%s", b.String())
	}
}
