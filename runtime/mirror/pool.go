package mirror

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordPool is where the lanes' fetchers take the records they decode
// (kgo.PoolRecords: a slab per fetched batch) and the bytes they
// decompress batches into (kgo.PoolDecompressBytes, which the records'
// keys, values and headers point into). kgo puts both back once every
// record of the batch is recycled. A slot recycles a record once nothing
// refers to it any more: at once when it skips it (most records a mirror
// reads are its own copies, read back in the other direction), after its
// transaction commits when it copies it. A record never recycled (its
// partition let go, say) is left to the garbage collector with its slab.
// Without it, a mirror allocated and collected every record twice (once
// read in each direction), and kgo copied every lz4 batch it decompressed.
type recordPool struct {
	slabs classes[kgo.Record]
	bufs  classes[byte]
	// scribble, for tests, has everything put back written over and
	// never used again: a record used after it was recycled shows as a
	// record with no key and value, or with the key "recycled", or with
	// bytes "x".
	scribble atomic.Bool
}

// fetched is the process's recordPool. It keeps slabs of 16 to 64 Ki
// records: batches differ in size (the source's producers batch as they
// like, ferry's copies by the tier's batch size), so a slab is made a
// power of two long, to serve the next batches of up to its size. It keeps
// decompression buffers of 4 KiB to 16 MiB (a batch is at most the tier's
// batch size, 1 MiB, before compression).
var fetched = &recordPool{
	slabs: newClasses[kgo.Record](4, 16, 2),
	bufs:  newClasses[byte](12, 24, 3),
}

// GetRecords is a slab with room for n records.
func (rp *recordPool) GetRecords(n int) []kgo.Record {
	if rp.scribble.Load() {
		return nil // kgo makes one
	}
	return rp.slabs.get(n)
}

// PutRecords takes back a slab whose records are all recycled.
func (rp *recordPool) PutRecords(s []kgo.Record) {
	if rp.scribble.Load() {
		for i := range s {
			s[i] = kgo.Record{Key: []byte("recycled"), Topic: "recycled", Offset: -1}
		}
		return
	}
	rp.slabs.put(s)
}

// GetDecompressBytes is a buffer for the batch compressed decompresses
// into, of its size if the codec says it (snappy), else of four times
// the compressed size or up to four times that; kgo grows it if need be.
func (rp *recordPool) GetDecompressBytes(compressed []byte, codec kgo.CompressionCodecType) []byte {
	if rp.scribble.Load() {
		return nil
	}
	size := 4 * len(compressed)
	if codec == kgo.CodecSnappy && !bytes.HasPrefix(compressed, xerial) {
		if n, k := binary.Uvarint(compressed); k > 0 && n <= 1<<rp.bufs.max {
			size = int(n)
		}
	}
	return rp.bufs.get(size)
}

// PutDecompressBytes takes back a buffer kgo has zeroed.
func (rp *recordPool) PutDecompressBytes(b []byte) {
	if rp.scribble.Load() {
		b = b[:cap(b)]
		for i := range b {
			b[i] = 'x'
		}
		return
	}
	rp.bufs.put(b)
}

// classes keeps slices by capacity, in powers of two from 1<<min to
// 1<<max: pools[i] holds slices of capacity 1<<(min+i) or more.
type classes[T any] struct {
	min, max int
	reach    int // how many classes up from the one asked for are looked in
	pools    []sync.Pool
}

func newClasses[T any](lo, hi, reach int) classes[T] {
	return classes[T]{min: lo, max: hi, reach: reach, pools: make([]sync.Pool, hi-lo+1)}
}

// get is an empty slice with room for n, kept or made a power of two
// long; nil past the largest class (the caller makes its own).
func (cs *classes[T]) get(n int) []T {
	c := 0
	if n > 1<<cs.min {
		c = bits.Len(uint(n-1)) - cs.min
	}
	if c >= len(cs.pools) {
		return nil
	}
	for i := c; i < min(c+cs.reach, len(cs.pools)); i++ {
		if s, ok := cs.pools[i].Get().(*[]T); ok {
			return (*s)[:0]
		}
	}
	return make([]T, 0, 1<<(cs.min+c))
}

// put keeps s in the largest class its capacity holds, if any.
func (cs *classes[T]) put(s []T) {
	if c := bits.Len(uint(cap(s))) - 1 - cs.min; c >= 0 && c < len(cs.pools) {
		cs.pools[c].Put(&s)
	}
}

// xerial starts a snappy batch in the Java producer's framing, whose size
// is not in its first bytes.
var xerial = []byte{130, 83, 78, 65, 80, 80, 89, 0}

// recycle gives records back to the pool; none of them may be used after.
func recycle(rs []*kgo.Record) {
	for _, r := range rs {
		r.Recycle()
	}
}
