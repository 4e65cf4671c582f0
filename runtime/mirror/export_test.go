package mirror

import "time"

// SetEvictedFor sets how long an evicted partition stays with a slot's
// companion, for a test, and returns the function that restores it.
func SetEvictedFor(d time.Duration) (restore func()) {
	old := evictedFor.Swap(int64(d))
	return func() { evictedFor.Store(old) }
}

// ScribbleRecycled has the records the mirror decodes written over once
// recycled and never reused, for a test, and returns the function that
// restores the pool.
func ScribbleRecycled() (restore func()) {
	fetched.scribble.Store(true)
	return func() { fetched.scribble.Store(false) }
}
