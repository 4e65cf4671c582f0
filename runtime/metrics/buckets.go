package metrics

import "time"

// Buckets are the upper bounds of the latency histogram Prometheus sees,
// dense around the four tier budgets (300 ms, 10 s, 10 min, 1 h).
var Buckets = []time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond,
	300 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute,
	10 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour,
}

// bucketOf is the index of the first bucket a latency fits in; len(Buckets)
// for +Inf.
func bucketOf(d time.Duration) int {
	for i, b := range Buckets {
		if d <= b {
			return i
		}
	}
	return len(Buckets)
}
