package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// After the jobs: each CDC table's counters, then the initial loads with
// rows done of the estimate, the rate and the time still needed at it, or
// "done". A mirror job's partitions are in neither.
func TestPrintTablesAndLoads(t *testing.T) {
	last := time.Date(2026, 11, 22, 5, 4, 3, 0, time.UTC)
	jobs := []metrics.Status{{
		ID: "cdc:trading-db", Kind: "cdc",
		Parts: map[string]metrics.PartStatus{
			"trading.orders": {Done: 250_000, Estimate: 1_000_000, RowsPerSec: 50_000, ETASeconds: 15,
				Counters: map[string]int64{metrics.SnapshotRead: 250_000, metrics.Creates: 12, metrics.Updates: 30, metrics.Deletes: 2},
				Latency:  metrics.Latency{P99: 41.5}, LastRecord: &last},
			"trading.fills": {Done: 1200, Estimate: 1200, RowsPerSec: 80_000,
				Counters: map[string]int64{metrics.SnapshotRead: 1200, metrics.Filtered: 1, metrics.Failed: 3}},
		},
	}, {ID: "mirror:audit.log", Kind: "mirror", Parts: map[string]metrics.PartStatus{"0": {Counters: map[string]int64{metrics.Filtered: 9}}}}}
	var b bytes.Buffer
	printTables(&b, jobs)
	printLoads(&b, jobs)
	want := `
CDC TABLE       TABLE           CREATE  UPDATE  DELETE  READ    FILTERED  FAILED  P99 MS  LAST EVENT
cdc:trading-db  trading.fills   0       0       0       1200    1         3       0.0     -
cdc:trading-db  trading.orders  12      30      2       250000  0         0       41.5    2026-11-22T05:04:03Z

INITIAL LOAD    TABLE           ROWS    ESTIMATE  DONE    ROWS/S  ETA
cdc:trading-db  trading.fills   1200    1200      100.0%  80000   done
cdc:trading-db  trading.orders  250000  1000000   25.0%   50000   15s
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	printTables(&b, jobs[1:])
	printLoads(&b, jobs[1:])
	if b.Len() != 0 {
		t.Errorf("a mirror job alone, yet printed:\n%s", b.String())
	}
}
