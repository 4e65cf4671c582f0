package mirror

import (
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordPool is where the lanes' consumers take the records they decode
// (kgo.PoolRecords): a slab per fetched batch, which kgo puts back once
// every record of it is recycled. A slot recycles a record once nothing
// refers to it any more: at once when it skips it (most records a mirror
// reads are its own copies, read back in the other direction), after its
// transaction commits when it copies it. A record never recycled (its
// partition let go, say) is left to the garbage collector with its slab.
// Without it, a mirror allocated and collected every record's struct
// twice (once read in each direction).
type recordPool struct {
	slabs sync.Pool
	// scribble, for tests, has every slab put back written over and
	// never used again: a record used after it was recycled shows as a
	// record with no key and value, or with the key "recycled".
	scribble atomic.Bool
}

// fetched is the process's recordPool.
var fetched = new(recordPool)

// GetRecords is a slab with room for n records.
func (rp *recordPool) GetRecords(n int) []kgo.Record {
	if rp.scribble.Load() {
		return make([]kgo.Record, n)
	}
	if s, ok := rp.slabs.Get().(*[]kgo.Record); ok && cap(*s) >= n {
		return (*s)[:n]
	}
	return make([]kgo.Record, n)
}

// PutRecords takes back a slab whose records are all recycled.
func (rp *recordPool) PutRecords(s []kgo.Record) {
	if rp.scribble.Load() {
		for i := range s {
			s[i] = kgo.Record{Key: []byte("recycled"), Topic: "recycled", Offset: -1}
		}
		return
	}
	rp.slabs.Put(&s)
}

// recycle gives records back to the pool; none of them may be used after.
func recycle(rs []*kgo.Record) {
	for _, r := range rs {
		r.Recycle()
	}
}
