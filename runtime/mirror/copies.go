package mirror

import (
	"github.com/twmb/franz-go/pkg/kgo"
)

// copyRec is a copy with room for its headers and their values. A slot
// takes its copies from its store (copies) and takes them all back once
// its transaction has ended, when every promise has run and kgo never
// touches them again. A mirror writes every record it reads, and a fresh
// copy for each was a tenth of a copying process's CPU (allocation,
// zeroing and collection); a sync.Pool, given each copy back from kgo's
// promise goroutine, cost another 2% handing copies between processors.
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

// copies is a slot's store of copies, used by its goroutine only: those
// of the open transaction, and those free to fill.
type copies struct {
	s    *slot
	used []*copyRec
	free []*copyRec
}

func newCopies(s *slot) *copies { return &copies{s: s} }

// get is a copy to fill.
func (cs *copies) get() *copyRec {
	var c *copyRec
	if n := len(cs.free); n > 0 {
		c, cs.free = cs.free[n-1], cs.free[:n-1]
	} else {
		c = &copyRec{slot: cs.s}
		c.promise = c.written
	}
	cs.used = append(cs.used, c)
	return c
}

// reclaim takes back the copies of a transaction that ended with every
// promise run (s.inflight waited). It keeps as many as the transaction
// took, so that a slot that copied a backlog does not hold on to its
// copies once its traffic is light. A free copy is not emptied (fill
// overwrites all of it): until it is filled again it keeps its last
// source's bytes from the collector, a transaction's worth at most.
func (cs *copies) reclaim() {
	keep := len(cs.used)
	cs.free = append(cs.free, cs.used...)
	clear(cs.free[keep:])
	cs.free = cs.free[:keep]
	clear(cs.used)
	cs.used = cs.used[:0]
}

// forget drops the copies of a transaction that may still have promises
// to run (its producer is being replaced): they are left to the garbage
// collector.
func (cs *copies) forget() {
	clear(cs.used)
	cs.used = cs.used[:0]
}

// written is a copy's promise: the slot learns the outcome.
func (c *copyRec) written(_ *kgo.Record, err error) {
	c.slot.produced(c.p, c.offset, err)
}
