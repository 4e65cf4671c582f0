package metrics

import (
	"math"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// A job's latency figures from its records: p50 and p99 (of rank q*(n-1))
// within the sketch's 1%, max exact, compliance against the budget, and an
// interval that starts empty after each report while the run's figures
// stay.
func TestLatencies(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	for _, c := range []struct {
		name          string
		samples       []time.Duration // each recorded once
		p50, p99, max float64         // ms
		compliance    string
	}{
		{"uniform", spreadMs(1, 100), 50, 99, 100, Healthy},
		{"one slow in a hundred", append(spreadMs(1, 99), ms(450)), 50, 99, 450, Healthy},
		{"two slow in a hundred", append(spreadMs(1, 98), ms(350), ms(400)), 50, 350, 400, Breaching},
		{"slow tail", append(spreadMs(1, 95), ms(310), ms(320), ms(330), ms(340), ms(350)), 50, 340, 350, Breaching},
		{"under a microsecond and negative count as 1 µs", []time.Duration{-time.Second, 0, 500}, 0.001, 0.001, 0.001, Healthy},
		{"a record from 1970 counts as 24 h", []time.Duration{ms(5), 56 * 365 * 24 * time.Hour}, 5, 5, 24 * 3600e3, Breaching},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := NewRegistry("test").Job(plan.Job{ID: "mirror:orders:dc1-dc2", Kind: plan.KindMirror, Budget: plan.Duration(300 * time.Millisecond)})
			for _, d := range c.samples {
				j.Observe("0", d, 10)
			}
			s := j.Status()
			got := s.Latency
			if got.Count != int64(len(c.samples)) || !near(got.P50, c.p50) || !near(got.P99, c.p99) || got.Max != c.max {
				t.Errorf("latency %+v, want p50 %.3f, p99 %.3f, max %.3f ms (1%%, max exact) over %d", got, c.p50, c.p99, c.max, len(c.samples))
			}
			if s.Compliance != c.compliance {
				t.Errorf("compliance %s, want %s", s.Compliance, c.compliance)
			}
			r := j.Interval(time.Now())
			if r.Records != int64(len(c.samples)) || !near(r.P99Ms, c.p99) || r.MaxMs != c.max {
				t.Errorf("interval report: %d records, p99 %.3f, max %.3f; want %d, %.3f, %.3f", r.Records, r.P99Ms, r.MaxMs, len(c.samples), c.p99, c.max)
			}
			j.Observe("0", ms(2), 10)
			if r := j.Interval(time.Now()); r.Records != 1 || r.RecordsTotal != int64(len(c.samples))+1 || !near(r.MaxMs, 2) {
				t.Errorf("next interval: %d records (%d in all), max %.3f ms; want 1 (%d), 2 ms", r.Records, r.RecordsTotal, r.MaxMs, len(c.samples)+1)
			}
		})
	}
}

// spreadMs is one sample at every millisecond from lo to hi.
func spreadMs(lo, hi int) []time.Duration {
	var out []time.Duration
	for v := lo; v <= hi; v++ {
		out = append(out, time.Duration(v)*time.Millisecond)
	}
	return out
}

// near reports whether got is within the sketches' 1% of want.
func near(got, want float64) bool { return math.Abs(got-want) <= 0.01*want }
