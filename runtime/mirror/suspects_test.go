package mirror

import (
	"testing"
	"time"
)

// TestSuspects: a partition evicted stays suspect for evictedFor, and one
// that is never looked up again (it moved to another slot) is forgotten at
// the slot's next eviction rather than kept for ever.
func TestSuspects(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	a, b, c := topicPart{"a", 0}, topicPart{"b", 1}, topicPart{"c", 2}
	ss := suspects{}
	ss.add(a, t0)
	ss.add(b, t0.Add(time.Minute))
	for _, tc := range []struct {
		tp   topicPart
		at   time.Duration
		want bool
	}{
		{a, time.Minute, true},
		{c, time.Minute, false},
		{a, suspectFor() - time.Nanosecond, true},
		{a, suspectFor(), false}, // and forgotten
		{a, 0, false},
		{b, suspectFor(), true},
	} {
		if got := ss.lately(tc.tp, t0.Add(tc.at)); got != tc.want {
			t.Errorf("lately(%v) at t0+%v = %v, want %v", tc.tp, tc.at, got, tc.want)
		}
	}
	ss.add(c, t0.Add(time.Minute+suspectFor()))
	if _, kept := ss[b]; kept || len(ss) != 1 {
		t.Errorf("after an eviction %v past b's: %v, want only c", suspectFor(), ss)
	}
}
