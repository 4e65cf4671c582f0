package mirror

import (
	"maps"
	"sync"
	"sync/atomic"
)

// copiers are the producer IDs of this process's slot producers (and
// their companions') in one datacenter. Such a producer writes nothing
// to a mirrored topic but copies, so a lane reading from that datacenter
// skips its batches without decoding them (see fetcher). A producer ID is
// never given to another transactional ID, so one learnt stays true.
type copiers struct {
	mu  sync.Mutex
	ids atomic.Pointer[map[int64]bool] // read on every fetch, written when a producer starts
}

// add learns a producer ID.
func (c *copiers) add(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.load()
	if old[id] {
		return
	}
	ids := make(map[int64]bool, len(old)+1)
	maps.Copy(ids, old)
	ids[id] = true
	c.ids.Store(&ids)
}

// load is the producer IDs learnt so far; the map is not to be changed.
func (c *copiers) load() map[int64]bool {
	if ids := c.ids.Load(); ids != nil {
		return *ids
	}
	return nil
}
