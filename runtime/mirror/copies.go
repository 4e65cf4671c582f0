package mirror

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// copyRec is a copy with room for its headers and their values. A slot
// takes its copies from a pool (copies) and gives each back when kgo is
// done with it: at its promise, after which kgo never touches a record.
// A mirror writes every record it reads, and a fresh copy for each was a
// tenth of a copying process's CPU (allocation, zeroing and collection).
type copyRec struct {
	record  kgo.Record
	headers [4]kgo.RecordHeader
	values  [40]byte

	// While a slot writes it: the slot, what it is a copy of, and the
	// slot's promise for it (bound once, not a closure per write).
	slot    *slot
	p       *part
	offset  int64
	promise func(*kgo.Record, error)
}

// copies is a slot's pool of copies.
type copies struct{ pool sync.Pool }

func newCopies(s *slot) *copies {
	cs := new(copies)
	cs.pool.New = func() any {
		c := &copyRec{slot: s}
		c.promise = c.written
		return c
	}
	return cs
}

// get is a copy to fill.
func (cs *copies) get() *copyRec { return cs.pool.Get().(*copyRec) }

// written is a copy's promise: the slot learns the outcome, and the copy,
// emptied of what it pointed to, goes back to the pool.
func (c *copyRec) written(_ *kgo.Record, err error) {
	s, p, offset := c.slot, c.p, c.offset
	c.record, c.headers, c.p = kgo.Record{}, [4]kgo.RecordHeader{}, nil
	s.copies.pool.Put(c)
	s.produced(p, offset, err)
}
