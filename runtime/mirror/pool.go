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
	slabs [maxSlabClass - minSlabClass + 1]sync.Pool // by capacity, as bufs
	bufs  [maxBufClass - minBufClass + 1]sync.Pool   // by capacity: bufs[i] holds 1<<(minBufClass+i) bytes or more
	// scribble, for tests, has everything put back written over and
	// never used again: a record used after it was recycled shows as a
	// record with no key and value, or with the key "recycled", or with
	// bytes "x".
	scribble atomic.Bool
}

// The decompression buffers kept are of 4 KiB to 16 MiB (a batch is at
// most the tier's batch size, 1 MiB, before compression).
const (
	minBufClass = 12
	maxBufClass = 24
)

// The slabs kept hold 16 to 64 Ki records. Batches differ in size (the
// source's producers batch as they like, ferry's copies by the tier's
// batch size), so a slab is made a power of two long, to serve the next
// batches of up to its size.
const (
	minSlabClass = 4
	maxSlabClass = 16
)

// fetched is the process's recordPool.
var fetched = new(recordPool)

// GetRecords is a slab with room for n records.
func (rp *recordPool) GetRecords(n int) []kgo.Record {
	if rp.scribble.Load() {
		return make([]kgo.Record, n)
	}
	c := class(n, minSlabClass)
	for i := c; i < min(c+2, len(rp.slabs)); i++ {
		if s, ok := rp.slabs[i].Get().(*[]kgo.Record); ok {
			return (*s)[:n]
		}
	}
	if c >= len(rp.slabs) {
		return make([]kgo.Record, n)
	}
	return make([]kgo.Record, n, 1<<(minSlabClass+c))
}

// PutRecords takes back a slab whose records are all recycled.
func (rp *recordPool) PutRecords(s []kgo.Record) {
	if rp.scribble.Load() {
		for i := range s {
			s[i] = kgo.Record{Key: []byte("recycled"), Topic: "recycled", Offset: -1}
		}
		return
	}
	if c := fullClass(cap(s), minSlabClass); c >= 0 && c < len(rp.slabs) {
		rp.slabs[c].Put(&s)
	}
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
		if n, k := binary.Uvarint(compressed); k > 0 && n <= 1<<maxBufClass {
			size = int(n)
		}
	}
	c := class(size, minBufClass)
	for i := c; i < min(c+3, len(rp.bufs)); i++ {
		if b, ok := rp.bufs[i].Get().(*[]byte); ok {
			return *b
		}
	}
	if c >= len(rp.bufs) {
		return nil // larger than kept: the codec makes its own
	}
	return make([]byte, 0, 1<<(minBufClass+c))
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
	if c := fullClass(cap(b), minBufClass); c >= 0 && c < len(rp.bufs) {
		rp.bufs[c].Put(&b)
	}
}

// class is the smallest class, counted from 1<<minClass, whose members
// hold n.
func class(n, minClass int) int {
	if n <= 1<<minClass {
		return 0
	}
	return bits.Len(uint(n-1)) - minClass
}

// fullClass is the largest class whose size a member of capacity n holds
// (negative below the first).
func fullClass(n, minClass int) int { return bits.Len(uint(n)) - 1 - minClass }

// xerial starts a snappy batch in the Java producer's framing, whose size
// is not in its first bytes.
var xerial = []byte{130, 83, 78, 65, 80, 80, 89, 0}

// recycle gives records back to the pool; none of them may be used after.
func recycle(rs []*kgo.Record) {
	for _, r := range rs {
		r.Recycle()
	}
}
