package mirror

import "time"

// SetEvictedFor sets how long an evicted partition stays with a slot's
// companion, for a test, and returns the function that restores it.
func SetEvictedFor(d time.Duration) (restore func()) {
	old := evictedFor.Swap(int64(d))
	return func() { evictedFor.Store(old) }
}
