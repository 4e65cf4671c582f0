package mirror

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A slot whose partition cannot be written evicts it (slot.evict). In the
// slot's transactions, the partition held the slot's other partitions for
// as long as the producer tried its records (a third of the tier's
// budget), and their copies waited. So an evicted partition is copied by
// the slot's companion instead: a second slot of the same lane and number,
// with a producer of its own (transactional ID the slot's plus ".q", see
// companionTxnID), made when first needed and stopped with the slot. The
// slot hands the partition over as it evicts it, and its job's next starts
// within evictedFor give it to the companion too. A companion that evicts
// a partition takes it again after a backoff (tryAgain). Its failures hold
// only the other suspects.
//
// The companion takes a partition as any slot does, by a claim (see
// acquire), with one difference in who is fenced: when the partition's
// latest checkpoint is the very record with which the slot or its
// companion let it go (kin.left), nobody else wrote it since and the
// live producer that wrote it no longer copies it, so it is claimed
// without fencing its writer, which would stop the other's copies. Any
// other record of the slot's family is fenced as another lane's would be
// (a companion hands the partition back to the slot rather than fence
// it). A partition the companion commits once evictedFor has passed since
// its last eviction goes back to the slot (handBack), by the same claim.

// evictedFor is how long a partition evicted stays suspect: its job's next
// start gives it to the companion, it is evicted at its first failure
// alone in a transaction, without the retry after a backoff, and the
// companion keeps it. Tests shorten it (suspectFor reads it).
var evictedFor atomic.Int64

func init() { evictedFor.Store(int64(5 * time.Minute)) }

func suspectFor() time.Duration { return time.Duration(evictedFor.Load()) }

// kin is what a slot and its companion share, under its mutex: the
// partitions either evicted lately, and the records with which either let
// a partition go.
type kin struct {
	mu      sync.Mutex
	evicted suspects
	left    map[topicPart]letGo
}

// letGo is the last record a slot or companion committed for a
// partition it let go.
type letGo struct {
	writer string
	offset int64
}

func newKin() *kin { return &kin{evicted: suspects{}, left: map[topicPart]letGo{}} }

// suspect reports whether tp was evicted within evictedFor.
func (k *kin) suspect(tp topicPart) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.evicted.lately(tp, time.Now())
}

// evict marks tp evicted now.
func (k *kin) evict(tp topicPart) {
	k.mu.Lock()
	k.evicted.add(tp, time.Now())
	k.mu.Unlock()
}

// forgive forgets the evictions of partitions the slot (not its
// companion) committed.
func (k *kin) forgive(parts map[*part]bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.evicted) == 0 {
		return
	}
	for p := range parts {
		delete(k.evicted, p.at())
	}
}

// let records that writer let tp go after committing the record at
// offset, its last of tp's checkpoint key.
func (k *kin) let(tp topicPart, writer string, offset int64) {
	k.mu.Lock()
	k.left[tp] = letGo{writer, offset}
	k.mu.Unlock()
}

// knows reports whether the record at offset, by writer, is the one with
// which the slot or its companion let tp go.
func (k *kin) knows(tp topicPart, writer string, offset int64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.left[tp] == letGo{writer, offset}
}

// took forgets how the family let the partitions go: they are taken again.
func (k *kin) took(parts []*part) {
	k.mu.Lock()
	for _, p := range parts {
		delete(k.left, p.at())
	}
	k.mu.Unlock()
}

// suspects are the partitions evicted within evictedFor, and when; the
// slot forgets one as soon as it commits the partition's records.
type suspects map[topicPart]time.Time

// add marks tp evicted at now, and forgets those evicted over evictedFor
// before: one that moved to another slot since is never committed or
// looked up here again.
func (ss suspects) add(tp topicPart, now time.Time) {
	maps.DeleteFunc(ss, func(_ topicPart, at time.Time) bool { return now.Sub(at) >= suspectFor() })
	ss[tp] = now
}

// lately reports whether tp was evicted within evictedFor of now.
func (ss suspects) lately(tp topicPart, now time.Time) bool {
	at, ok := ss[tp]
	if ok && now.Sub(at) >= suspectFor() {
		delete(ss, tp)
		return false
	}
	return ok
}

// companionTxnID is the transactional ID of a slot's companion.
func companionTxnID(slot string) string { return slot + ".q" }

func newCompanion(main *slot) *slot {
	q := newSlot(main.l, main.n)
	q.txnID, q.main, q.kin = companionTxnID(main.txnID), main, main.kin
	q.given, q.tries = map[*laneJob]bool{}, map[topicPart]int{}
	return q
}

// quarantine hands the suspects among parts to the slot's companion,
// starting it if needed, and returns the others.
func (s *slot) quarantine(parts []*part) []*part {
	if s.main != nil {
		return parts // the companion itself
	}
	var rest, bad []*part
	for _, p := range parts {
		if !p.plain && s.kin.suspect(p.at()) {
			bad = append(bad, p)
		} else {
			rest = append(rest, p)
		}
	}
	if len(bad) > 0 {
		s.startCompanion().add(bad)
	}
	return rest
}

// companion is the slot's companion, if it started one (nil if not).
func (s *slot) companion() *slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q
}

// startCompanion is the slot's running companion, started if there is
// none or it ended.
func (s *slot) startCompanion() *slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.q != nil {
		select {
		case <-s.q.done:
		default:
			return s.q
		}
	}
	s.q = newCompanion(s)
	s.l.log.Info("slot starts its companion for partitions evicted lately", "slot", s.n, "companion", s.q.txnID)
	go s.q.run(s.l.ctx)
	return s.q
}

// stopCompanion stops the companion as its slot lets its own partitions
// go: those it copies are let go too, and the slot's next start gives
// them to a companion again.
func (s *slot) stopCompanion(commit bool) {
	s.mu.Lock()
	q := s.q
	s.q = nil
	s.mu.Unlock()
	if q != nil {
		q.stop(commit)
	}
}

// quarantined serves a companion until it is stopped or fails. A failure
// fences the companion's transactional ID, which aborts a transaction it
// left open (its claims' or copies' whose commit failed): until then every
// read_committed read of the checkpoints, its slot's claims' too, would
// wait for it. Then it fails the jobs whose partitions its slot gave it
// (those it copied, and those it was still claiming), whose next starts
// give them to a companion again (it does not retry itself as a slot
// does).
func (s *slot) quarantined(ctx context.Context) {
	err := s.serve(ctx)
	if err == nil {
		return
	}
	s.l.log.Warn("companion of a slot failed; its partitions' jobs start again", "slot", s.n, "error", err)
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if ferr := s.fence(fctx, s.txnID); ferr != nil {
		s.l.log.Warn("fencing a failed companion failed; a transaction it left open ends at the broker's transaction timeout", "slot", s.n, "error", ferr, "timeout", txnTimeout)
	}
	cancel()
	s.mu.Lock()
	jobs := slices.Collect(maps.Keys(s.given))
	s.mu.Unlock()
	for _, j := range jobs {
		if s.l.wanted(j) {
			j.fail(fmt.Errorf("the companion of slot %d, which copied its partitions evicted lately, failed: %w", s.n, err))
		}
	}
}

// tryAgain has the companion take partition p again, fresh, after a
// backoff that doubles with each eviction since it last committed p, from
// firstBackoff up to maxBackoff: its job keeps copying its other partitions
// meanwhile, in error (lane.broke).
func (s *slot) tryAgain(p *part) {
	n := s.tries[p.at()]
	s.tries[p.at()] = n + 1
	backoff := min(firstBackoff<<min(n, 6), maxBackoff)
	s.l.log.Warn("partition cannot be written; tried again", "topic", p.topic, "partition", p.partition, "in", backoff)
	at := time.Now().Add(backoff)
	if len(s.waiting) == 0 || at.Before(s.retryAt) {
		s.retryAt = at
	}
	s.waiting = append(s.waiting, newPart(p.job, p.partition))
}

// handBack gives the slot back the partitions among those the companion
// just committed that were not evicted within evictedFor: the companion
// lets them go, noting its last record (kin.let), and the slot claims them
// without fencing it.
func (s *slot) handBack(committed map[*part]bool) {
	var back []*part
	for p := range committed {
		if !s.kin.suspect(p.at()) && s.parts[p] {
			back = append(back, p)
		}
	}
	if len(back) == 0 {
		return
	}
	fresh := make([]*part, 0, len(back))
	for _, p := range back {
		s.leave(p) // committed() forgot its tries
		f := newPart(p.job, p.partition)
		f.plain = true
		fresh = append(fresh, f)
		s.l.log.Info("partition written again for a while; back to its slot", "topic", p.topic, "partition", p.partition, "slot", s.n)
	}
	s.main.add(fresh)
}
