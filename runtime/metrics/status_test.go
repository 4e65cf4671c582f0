package metrics

import (
	"testing"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// An initial load's status: the time still needed at its rate while it
// runs, none once done or before it has a rate.
func TestLoadETA(t *testing.T) {
	j := NewRegistry("test").Job(plan.Job{ID: "cdc:trading-db", Kind: plan.KindCDC})
	for _, c := range []struct {
		done, estimate int64
		rate, eta      float64
	}{
		{250_000, 1_000_000, 50_000, 15},
		{0, 1_000_000, 0, 0},
		{1_000_000, 1_000_000, 80_000, 0},
	} {
		j.SetProgress("trading.orders", c.done, c.estimate, c.rate)
		p := j.Status().Parts["trading.orders"]
		if p.Done != c.done || p.Estimate != c.estimate || p.RowsPerSec != c.rate || p.ETASeconds != c.eta {
			t.Errorf("SetProgress(%d, %d, %.0f): status %+v, want ETA %.0f s", c.done, c.estimate, c.rate, p, c.eta)
		}
	}
}
