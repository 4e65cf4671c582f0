package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/checkpoint"
	"github.com/ferry-pipelines/ferry/runtime/dlq"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// Bounds of one transaction besides the tier's commit interval: its source
// records are kept until it commits, to rebuild it after an abort.
const (
	maxTxnRecords = 20000
	maxTxnBytes   = 8 << 20
)

// maxUnsaved is how far a partition's position may move without a
// checkpoint: records skipped by the loop rule and transaction markers need
// no transaction, and the position past them is written with the
// partition's next copies, when the slot lets the partition go, or in a
// transaction of its own past this many records. (A new owner reads them
// again and skips them again.) So mirroring both ways, each direction's
// reading of the other's copies costs no checkpoints.
const maxUnsaved = 10000

// txnTimeout is the transaction timeout of a slot's producer: the broker
// aborts a transaction its writer left open this long.
const txnTimeout = 60 * time.Second

// slot copies the partitions of a lane that hash to it (slotOf), in
// transactions of its one producer that carry their copies, dead letters
// and checkpoints. Everything below the mutex belongs to the slot's
// goroutine.
type slot struct {
	l      *lane
	n      int
	txnID  string
	prod   *kgo.Client
	proven bool            // a commit of prod was read back (see landed)
	wide   map[string]bool // topics the producer batches by wideBatchBytes (slot goroutine's)
	topics map[string]bool // of partitions the slot took, until forgotten (slot goroutine's)

	mu      sync.Mutex
	batches []batch
	adds    []*part
	drops   []*dropReq
	forgets []string
	claims  []*claiming // takings whose reads are done (see takeLater)
	wake    chan struct{}
	quit    chan bool // true: commit what is pending, then stop; false: abort
	done    chan struct{}

	gen      int            // incarnation, which a claiming names
	parts    map[*part]bool // taken
	waiting  []*part        // held by another lane or lost to a claim: tried again
	retryAt  time.Time
	inTxn    bool
	saveDue  bool           // a position moved maxUnsaved without a transaction
	txnAt    time.Time      // when the open transaction's first record was fetched, or saveDue was set
	txnParts map[*part]bool // with output in the open transaction
	moved    map[*part]bool // position moved since its last checkpoint
	saving   []*part        // whose checkpoints the transaction carries
	nRecs    int            // source records in the open transaction
	nBytes   int            // and their bytes
	inflight sync.WaitGroup // produces whose promise has not run yet
	copies   *copies
	failMu   sync.Mutex
	failure  *produceError           // the first failed produce of the open transaction
	failed   map[*part]*produceError // and each partition's first

	kin  *kin  // shared with the companion (quarantine.go)
	main *slot // the slot whose companion this is; nil for a slot
	q    *slot // the slot's companion, if started (under mu)
	// given are the jobs whose partitions the slot gave its companion
	// (a companion's, under mu): those it fails if it fails.
	given map[*laneJob]bool
	// tries counts a companion's evictions of a partition since it last
	// committed it, for the backoff of its next try (a companion's, its
	// goroutine's).
	tries map[topicPart]int
	// stopping is set while the slot lets its partitions go: a partition
	// that cannot be written then fails its job, and the job's next start
	// gives it to a companion.
	stopping bool
}

// part is one partition of a job, as a slot that takes it sees it.
type part struct {
	job       *laneJob
	topic     string
	partition int32
	name      string // the partition number, as metrics and checkpoints name it
	key       string // its checkpoint key
	heldBy    string // the other lane's writer that holds it, while waiting
	fromStart bool   // no checkpoint: copy from the partition's start
	plain     bool   // handed back by the companion: not quarantined again

	// the slot goroutine's
	next    int64 // next source offset to take
	saved   int64 // next offset as of the last committed checkpoint
	lso     int64
	pending []*kgo.Record // source records of the open transaction
	copies  []copied
	dead    int64
	poison  map[int64]error // source offsets that can never be written
	careful bool            // rebuild with a write at a time, to find a poison record
	last    int64           // offset of the last record committed for its checkpoint key, -1 if none
	ck      *kgo.Record     // its checkpoint in the open transaction, until it commits

	slot   *slot
	queued atomic.Int64 // bytes of fetched records waiting for the slot
	paused atomic.Bool  // its fetching is paused until the slot catches up
}

// at is the partition's topic and number.
func (p *part) at() topicPart { return topicPart{p.topic, p.partition} }

// batch is what a fetch hands a slot: records of one of its partitions,
// the offsets it covers (records, and the batches of copies skipped
// undecoded) and the partition's last stable offset, for lag.
type batch struct {
	p           *part
	records     []*kgo.Record
	first, next int64 // the first offset covered, and the one after the last
	skipped     int64 // records in the batches skipped
	lso         int64
	bytes       int64
	reset       bool      // the partition starts before its checkpoint: made again
	fetched     time.Time // when the fetch took it
}

type dropReq struct {
	job  *laneJob
	done chan struct{}
}

// copied is a copy in the open transaction, for its latency at commit.
type copied struct {
	at    time.Time
	bytes int
}

// produceError is a produce that failed, with the partition and source
// offset whose output it was (nil and -1 for a checkpoint).
type produceError struct {
	p      *part
	offset int64
	err    error
}

func (e *produceError) Error() string {
	if e.p == nil {
		return e.err.Error()
	}
	return fmt.Sprintf("partition %d of %s, offset %d: %v", e.p.partition, e.p.topic, e.offset, e.err)
}

func (e *produceError) Unwrap() error { return e.err }

func newSlot(l *lane, n int) *slot {
	s := &slot{
		l: l, n: n, txnID: slotTxnID(l.name, n),
		wake: make(chan struct{}, 1), quit: make(chan bool, 1), done: make(chan struct{}),
		wide: map[string]bool{}, topics: map[string]bool{}, parts: map[*part]bool{}, txnParts: map[*part]bool{}, moved: map[*part]bool{}, failed: map[*part]*produceError{}, kin: l.kins[n],
	}
	s.copies = newCopies(s)
	return s
}

// forget has the producer forget a topic whose job left (see lane.remove).
func (s *slot) forget(topic string) {
	s.mu.Lock()
	s.forgets = append(s.forgets, topic)
	s.mu.Unlock()
	s.signal()
}

// deliver queues fetched records (called by the fetcher).
func (s *slot) deliver(bs ...batch) {
	s.mu.Lock()
	s.batches = append(s.batches, bs...)
	s.mu.Unlock()
	s.signal()
}

// add queues partitions to take (a job joined the lane).
func (s *slot) add(parts []*part) {
	if len(parts) == 0 {
		return
	}
	s.mu.Lock()
	s.adds = append(s.adds, parts...)
	if s.main != nil {
		for _, p := range parts {
			s.given[p.job] = true
		}
	}
	s.mu.Unlock()
	s.signal()
}

// drop lets a job's partitions go: what is pending of them is committed and
// a release is written for each. It waits until done or the slot stops.
func (s *slot) drop(j *laneJob) {
	d := &dropReq{job: j, done: make(chan struct{})}
	s.mu.Lock()
	s.drops = append(s.drops, d)
	s.mu.Unlock()
	s.signal()
	select {
	case <-d.done:
	case <-s.done:
	}
}

func (s *slot) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// stop stops the slot and waits for it: commit what is pending when the
// slot is still ours (revoked, closing), abort when it is lost.
func (s *slot) stop(commit bool) {
	select {
	case s.quit <- commit:
	default:
	}
	<-s.done
}

// A slot that failed takes itself again, and a companion a partition it
// evicted (tryAgain), after a backoff that doubles from firstBackoff up to
// maxBackoff, as the executor's for a failed job.
const (
	firstBackoff = 500 * time.Millisecond
	maxBackoff   = 30 * time.Second
)

// run takes the slot and serves it until stopped. A failure (a fenced
// producer, a datacenter away) ends an incarnation: the slot lets its
// partitions go, waits, initialises its producer again (fencing whoever
// holds its transactional ID) and takes them again.
func (s *slot) run(ctx context.Context) {
	defer close(s.done)
	if s.main != nil {
		s.quarantined(ctx)
		return
	}
	for backoff := firstBackoff; ; backoff = min(2*backoff, maxBackoff) {
		started := time.Now()
		err := s.serve(ctx)
		if err == nil {
			return
		}
		if time.Since(started) > time.Minute {
			backoff = firstBackoff
		}
		s.l.log.Warn("slot failed; taking it again", "slot", s.n, "error", err, "in", backoff)
		select {
		case <-s.quit:
			return
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if !s.l.holds(s) {
			return // the group gave it to another process meanwhile
		}
	}
}

// serve runs one incarnation and lets every partition go after it. It
// returns the incarnation's failure (nil once stopped).
func (s *slot) serve(ctx context.Context) error {
	commit, err := s.incarnation(ctx)
	s.leaveAll(ctx, commit && err == nil)
	if s.prod != nil {
		s.prod.Close()
		s.prod = nil
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// incarnation initialises the producer, takes the slot's partitions and
// serves them until told to stop (nil error, and whether to commit) or
// until it fails.
func (s *slot) incarnation(ctx context.Context) (commit bool, err error) {
	if err := s.open(ctx); err != nil {
		return false, err
	}

	s.gen++
	if s.main == nil { // a companion takes what its slot gives it
		s.mu.Lock()
		s.adds, s.claims = nil, nil // the lane's current partitions of the slot replace them
		s.mu.Unlock()
		if err := s.take(ctx, s.l.partsOf(s.n)); err != nil {
			return false, err
		}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(s.nextWake())
		select {
		case commit := <-s.quit:
			return commit, nil
		case <-ctx.Done():
			return false, nil
		case <-s.wake:
			if err := s.work(ctx); err != nil {
				return false, err
			}
		case <-timer.C:
			if err := s.tick(ctx); err != nil {
				return false, err
			}
		}
	}
}

// open starts the producer (fencing whoever holds the transactional ID,
// an earlier producer of the slot included), with the wide topics of the
// moment: kgo reads a topic's batch limit once per partition.
func (s *slot) open(ctx context.Context) error {
	if s.prod != nil {
		s.prod.Close()
	}
	s.copies.forget()
	var err error
	s.proven = false
	if s.prod, err = kgo.NewClient(s.l.producerOpts(s.txnID, maps.Clone(s.wide))...); err != nil {
		return err
	}
	id, _, err := s.prod.ProducerID(ctx)
	if err != nil {
		return fmt.Errorf("init transactional producer %s: %w", s.txnID, err)
	}
	s.l.writers.add(id)
	return nil
}

// nextWake is how long until the open transaction is due or waiting
// partitions are tried again.
func (s *slot) nextWake() time.Duration {
	due := time.Now().Add(time.Hour)
	if s.inTxn || s.saveDue {
		due = s.txnAt.Add(s.l.key.client.CommitInterval.D())
	}
	if len(s.waiting) > 0 && s.retryAt.Before(due) {
		due = s.retryAt
	}
	return max(time.Until(due), 0)
}

func (s *slot) tick(ctx context.Context) error {
	if (s.inTxn || s.saveDue) && time.Since(s.txnAt) >= s.l.key.client.CommitInterval.D() {
		if err := s.commit(ctx); err != nil {
			return err
		}
	}
	if len(s.waiting) > 0 && !time.Now().Before(s.retryAt) {
		parts := s.waiting
		s.waiting = nil
		s.takeLater(ctx, parts)
	}
	return nil
}

// work handles what the fetcher and the lane queued.
func (s *slot) work(ctx context.Context) error {
	s.mu.Lock()
	batches, adds, drops, forgets, claims := s.batches, s.adds, s.drops, s.forgets, s.claims
	s.batches, s.adds, s.drops, s.forgets, s.claims = nil, nil, nil, nil, nil
	s.mu.Unlock()
	// Only the topics the slot wrote: forgetting one ends the open
	// transaction early.
	forgets = slices.DeleteFunc(forgets, func(t string) bool { return !s.topics[t] })
	if len(forgets) > 0 {
		if s.inTxn { // a topic cannot be forgotten within a transaction
			if err := s.commit(ctx); err != nil {
				return err
			}
		}
		s.prod.PurgeTopicsFromProducing(forgets...)
		for _, t := range forgets {
			delete(s.topics, t)
		}
	}
	for _, b := range batches {
		if err := s.process(ctx, b); err != nil {
			return err
		}
	}
	if s.inTxn && s.l.commitsAtOnce() && !s.queued() {
		if err := s.commit(ctx); err != nil {
			return err
		}
	}
	s.takeLater(ctx, adds)
	for _, c := range claims {
		if err := s.advance(ctx, c); err != nil {
			return err
		}
	}
	if len(drops) > 0 {
		leaving := map[*laneJob]bool{}
		for _, d := range drops {
			leaving[d.job] = true
		}
		if err := s.release(ctx, leaving); err != nil {
			return err
		}
		for _, d := range drops {
			close(d.done)
		}
	}
	return nil
}

// queued reports whether fetched records wait for the slot.
func (s *slot) queued() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches) > 0
}

// take acquires partitions (see acquire) and starts fetching those it got.
// The slot copies nothing meanwhile: it takes its partitions so as it
// starts; later ones it takes in stages (takeLater).
func (s *slot) take(ctx context.Context, parts []*part) error {
	live := s.quarantine(s.live(parts))
	if len(live) == 0 {
		return nil
	}
	held, lost, err := s.acquire(ctx, live)
	if err != nil {
		return err
	}
	s.took(live, held, lost)
	return nil
}

// live are the parts whose jobs are still in the lane.
func (s *slot) live(parts []*part) []*part {
	var live []*part
	for _, p := range parts {
		if s.l.wanted(p.job) {
			live = append(live, p)
		}
	}
	return live
}

// took starts fetching the partitions of parts that the slot acquired, and
// has those held or lost wait.
func (s *slot) took(parts, held, lost []*part) {
	waiting := map[*part]bool{}
	for _, p := range append(held, lost...) {
		waiting[p] = true
	}
	var got []*part
	for _, p := range parts {
		if !waiting[p] {
			s.parts[p] = true
			got = append(got, p)
		}
	}
	if len(held)+len(lost) > 0 {
		s.waiting = append(s.waiting, held...)
		s.waiting = append(s.waiting, lost...)
		s.retryAt = time.Now().Add(time.Second)
		for _, p := range held {
			s.l.log.Info("partition held by another lane; taking it once released or idle", "topic", p.topic, "partition", p.partition, "writer", p.heldBy, "within", holdTimeout)
		}
	}
	for _, p := range got {
		p.slot = s
		s.topics[p.topic] = true
	}
	s.kin.took(got)
	s.l.fetcher(s.n).add(got)
	s.l.started(got, held)
}

// takeLater takes partitions in stages (see claiming): the reads run on
// goroutines of their own, the claims' transaction between the slot's
// copies (advance).
func (s *slot) takeLater(ctx context.Context, parts []*part) {
	live := s.quarantine(s.live(parts))
	if len(live) == 0 {
		return
	}
	gen := s.gen
	go func() {
		c := s.look(ctx, live)
		c.gen = gen
		s.staged(c)
	}()
}

// staged queues a claiming whose reads are done.
func (s *slot) staged(c *claiming) {
	s.mu.Lock()
	s.claims = append(s.claims, c)
	s.mu.Unlock()
	s.signal()
}

// advance moves a claiming on: once looked at, the slot commits its
// claims and reads them back on another goroutine; once read back, it
// takes the partitions whose claims hold. A job that left the lane
// meanwhile is not claimed, or its claims are released.
func (s *slot) advance(ctx context.Context, c *claiming) error {
	if c.gen != s.gen {
		return nil // begun by an earlier incarnation, which the slot took again whole
	}
	if c.err != nil {
		return c.err
	}
	if !c.read {
		c.parts = s.live(c.parts)
		if len(c.parts) > 0 {
			if err := s.commit(ctx); err != nil { // claims are transactions of their own
				return err
			}
			var err error
			if c.claimed, err = s.writeClaims(ctx, c.parts, c.cur); err != nil {
				return err
			}
		}
		go func() {
			c.readBack(ctx, s)
			s.staged(c)
		}()
		return nil
	}
	held, lost := c.judge()
	var parts, gone []*part
	for _, p := range c.parts {
		if s.l.wanted(p.job) {
			parts = append(parts, p)
		} else if !slices.Contains(lost, p) {
			gone = append(gone, p)
		}
	}
	if len(gone) > 0 {
		if err := s.commit(ctx); err != nil {
			return err
		}
		if err := s.writeReleases(ctx, gone); err != nil {
			return err
		}
	}
	lost = slices.DeleteFunc(lost, func(p *part) bool { return !s.l.wanted(p.job) })
	held = slices.DeleteFunc(held, func(p *part) bool { return !s.l.wanted(p.job) })
	s.took(append(parts, held...), held, lost)
	return nil
}

// process writes the output of fetched records into the open transaction.
func (s *slot) process(ctx context.Context, b batch) error {
	p := b.p
	s.l.fetcher(s.n).processed(p, b.bytes)
	if !s.parts[p] {
		return nil
	}
	if b.reset {
		s.l.log.Warn("partition starts before its checkpoint: the topic was made again or emptied; copying its records from its start", "topic", p.topic, "partition", p.partition, "checkpoint", p.next, "start", b.first)
		p.next = b.first
	}
	p.lso = b.lso
	filtered := int64(0)
	// Whether s.moved and s.txnParts hold p, until a commit clears them:
	// set once a batch, not once a record.
	moved, inTxn := false, false
	for _, r := range b.records {
		if r.Offset < p.next {
			r.Recycle()
			continue // fetched before our checkpoint moved on
		}
		p.next = r.Offset + 1
		if !moved {
			s.moved[p], moved = true, true
		}
		if r.Attrs.IsControl() {
			r.Recycle()
			continue // a transaction marker: nothing to copy
		}
		out, c := s.output(p, r)
		if out == nil {
			r.Recycle()
			filtered++
			continue
		}
		if err := s.begin(); err != nil {
			return err
		}
		// The commit interval counts from the fetch: records that waited
		// for the slot (while it committed) have waited their share.
		if b.fetched.Before(s.txnAt) {
			s.txnAt = b.fetched
		}
		if !inTxn {
			s.txnParts[p], inTxn = true, true
		}
		p.pending = append(p.pending, r)
		s.nRecs++
		s.nBytes += len(r.Key) + len(r.Value)
		s.produce(ctx, out, c, p, r.Offset)
		if s.nRecs >= maxTxnRecords || s.nBytes >= maxTxnBytes {
			if err := s.commit(ctx); err != nil {
				return err
			}
			if !s.parts[p] {
				// Evicted by the commit, which dropped its records of the
				// transaction: copying the rest of the batch would
				// checkpoint past them. Whoever takes it next copies
				// them again from its checkpoint.
				return nil
			}
			moved, inTxn = false, false
		}
	}
	if b.next > p.next { // past batches of copies skipped, or records kgo dropped (aborted)
		p.next = b.next
		if !moved {
			s.moved[p] = true
		}
	}
	if filtered += b.skipped; filtered > 0 {
		p.job.env.Metrics.Count(p.name, metrics.Filtered, filtered)
	}
	if !s.txnParts[p] {
		p.job.env.Metrics.SetLag(p.name, p.lso-p.next)
	}
	if !s.saveDue && p.next-max(p.saved, 0) >= maxUnsaved {
		s.saveDue = true
		if !s.inTxn {
			s.txnAt = time.Now()
		}
	}
	return nil
}

func (s *slot) begin() error {
	if s.inTxn {
		return nil
	}
	if err := s.prod.BeginTransaction(); err != nil {
		return err
	}
	s.failMu.Lock()
	s.failure = nil // the failures of an aborted transaction are handled
	clear(s.failed)
	s.failMu.Unlock()
	s.inTxn = true
	if s.txnAt.IsZero() {
		s.txnAt = time.Now()
	}
	return nil
}

// output is what a source record becomes in the target datacenter: its
// copy (and c, the copy from the slot's pool it is), its dead letter, or
// nil when the loop rule skips it.
func (s *slot) output(p *part, r *kgo.Record) (out *kgo.Record, c *copyRec) {
	spec := p.job.spec
	verdict, why := classify(r, s.l.origins)
	switch {
	case verdict == skipRecord:
		return nil, nil
	case verdict == badOrigin:
		p.dead++
		target := *r
		target.Headers = append([]kgo.RecordHeader(nil), r.Headers...)
		return dlq.Record(&target, s.letter(p, r, "MALFORMED_ORIGIN_HEADER", why)), nil
	case s.tooLarge(p, r) && p.poison[r.Offset] == nil:
		p.poison[r.Offset] = kerr.MessageTooLarge // what kgo would answer
		fallthrough
	case p.poison[r.Offset] != nil:
		p.dead++
		err := p.poison[r.Offset]
		return dlq.Record(copyOf(r, spec.Mirror.From), s.letter(p, r, dlq.Class(err), fmt.Sprintf("cannot write to %s in %s: %v", r.Topic, spec.Mirror.To, err))), nil
	}
	p.copies = append(p.copies, copied{at: r.Timestamp, bytes: len(r.Key) + len(r.Value)})
	c = s.copies.get()
	return c.fill(r, spec.Mirror.From), c
}

// letter says why a source record is dead-lettered.
func (s *slot) letter(p *part, r *kgo.Record, class, msg string) dlq.Failure {
	return dlq.Failure{Job: p.job.spec.ID, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Class: class, Message: msg}
}

// produce writes a record asynchronously, keeping the first failure of the
// transaction. Its promise is counted, because kgo calls the promise of a
// record that fails before it is buffered (one too large, say) after Flush
// may already have returned. c is the copy from the slot's pool that out
// is, if it is one.
func (s *slot) produce(ctx context.Context, out *kgo.Record, c *copyRec, p *part, sourceOffset int64) {
	s.inflight.Add(1)
	if c != nil {
		c.p, c.offset = p, sourceOffset
		s.prod.Produce(ctx, out, c.promise)
		return
	}
	s.prod.Produce(ctx, out, func(_ *kgo.Record, err error) { s.produced(p, sourceOffset, err) })
}

// produced is the outcome of a write of the output of source record
// sourceOffset of p (nil and -1 for a checkpoint or claim).
func (s *slot) produced(p *part, sourceOffset int64, err error) {
	defer s.inflight.Done()
	if err == nil {
		return
	}
	pe := &produceError{p: p, offset: sourceOffset, err: err}
	s.failMu.Lock()
	if s.failure == nil || s.failure.p == nil && p != nil {
		s.failure = pe
	}
	if p != nil && s.failed[p] == nil {
		s.failed[p] = pe
	}
	s.failMu.Unlock()
}

// emit writes the output of one source record again, after an abort.
// Careful emits wait for each write, so that a failure names its record
// exactly.
func (s *slot) emit(ctx context.Context, p *part, r *kgo.Record) error {
	out, c := s.output(p, r)
	if out == nil {
		return nil
	}
	if p.careful {
		if err := s.prod.ProduceSync(ctx, out).FirstErr(); err != nil {
			return &produceError{p: p, offset: r.Offset, err: err}
		}
		return nil
	}
	s.produce(ctx, out, c, p, r.Offset)
	return nil
}

// settle waits until every record of the transaction has its outcome and
// returns the first failure.
func (s *slot) settle(ctx context.Context) error {
	if err := s.prod.Flush(ctx); err != nil {
		return err
	}
	s.inflight.Wait()
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if s.failure != nil {
		return s.failure
	}
	return nil
}

// alone lists the partitions of the open transaction whose records failed
// while others' were written: the target refuses them, not everything.
func (s *slot) alone() []*part {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if len(s.failed) == len(s.txnParts) {
		return nil
	}
	var out []*part
	for p := range s.failed {
		if s.txnParts[p] {
			out = append(out, p)
		}
	}
	return out
}

// commit ends the open transaction with the checkpoints of the partitions
// it copied and of those whose position moved maxUnsaved (all whose
// position moved when all is set, as the slot lets them go). A record that
// the target broker refuses permanently (too large for the target topic,
// say) is found by rebuilding the transaction with its partition's records
// written one at a time and is dead-lettered in its place once the broker
// refused it alone in a batch. A record the producer refuses for its size
// before compression is known by its promise: it is written again by a
// producer whose limit for its topic is wideBatchBytes (until the
// transaction commits) when it may fit compressed, else dead-lettered at
// once, without the rebuild one at a time. A partition whose
// records fail (after the producer's retries, see lane.producerOpts) while
// the others' are written, or twice when it is alone in the transaction
// (once, when the slot evicted it lately: suspects), is taken out of
// the transaction (evict) and the others commit without it. Any other failure is retried after a
// backoff and never dead-lettered.
func (s *slot) commit(ctx context.Context) error { return s.commitWith(ctx, false) }

func (s *slot) commitWith(ctx context.Context, all bool) error {
	if !s.inTxn && !s.saveDue && (!all || len(s.moved) == 0) {
		return nil
	}
	rebuild := false
	backoff := 100 * time.Millisecond
	var again *part // a partition alone in the transaction that failed
	for {
		err := s.tryCommit(ctx, rebuild, all)
		if err == nil {
			s.committed()
			if len(s.wide) > 0 {
				clear(s.wide)
				return s.open(ctx)
			}
			return nil
		}
		if ctx.Err() != nil || fenced(err) {
			return err
		}
		alone := s.alone()
		if aerr := s.abort(ctx); aerr != nil && (ctx.Err() != nil || fenced(aerr)) {
			return aerr
		}
		var pe *produceError
		isPart := errors.As(err, &pe) && pe.p != nil
		switch {
		case isPart && dlq.RefusedByClient(pe.err) && !s.wide[pe.p.topic] && s.mightFit(pe.p, pe.offset):
			pe.p.careful = true
			s.wide[pe.p.topic] = true
			if err := s.open(ctx); err != nil {
				return err
			}
		case isPart && dlq.RefusedByClient(pe.err) && pe.p.poison[pe.offset] == nil:
			pe.p.poison[pe.offset] = pe.err
		case isPart && dlq.Permanent(pe.err) && !pe.p.careful:
			pe.p.careful = true
		case isPart && dlq.Permanent(pe.err) && pe.p.poison[pe.offset] == nil:
			pe.p.poison[pe.offset] = pe.err
		case isPart && dlq.Permanent(pe.err):
			s.evict(pe.p, fmt.Errorf("its dead letter of offset %d cannot be written to %s either: %w", pe.offset, systopics.DLQ, pe.err))
		case isPart && (topicGone(pe.err) || !retriable(pe.err)):
			s.evict(pe.p, pe.err)
		case len(alone) > 0:
			for _, p := range alone {
				s.evict(p, s.failedWith(p))
			}
		case isPart && len(s.txnParts) == 1 && (again == pe.p || s.kin.suspect(pe.p.at())):
			s.evict(pe.p, pe.err) // alone in the transaction, it failed twice
		default:
			if isPart && len(s.txnParts) == 1 {
				again = pe.p
			}
			for p := range s.txnParts {
				p.job.env.Metrics.Count(p.name, metrics.Retries, 1)
			}
			s.l.log.Warn("transaction failed; retrying", "slot", s.n, "error", err, "in", backoff)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		rebuild = true
	}
}

// mightFit reports whether a record kgo refused for its size may fit its
// target topic once compressed with the tier's codec, alone in a batch.
// When its key and value alone, so compressed, are over the topic's limit,
// the broker would refuse it whatever the batching: it is poisoned at once,
// sparing the slot a new producer (and its other partitions the pause).
func (s *slot) mightFit(p *part, offset int64) bool {
	i := slices.IndexFunc(p.pending, func(r *kgo.Record) bool { return r.Offset == offset })
	if i < 0 {
		return true
	}
	return s.fits(p.pending[i], p.job.targetMax())
}

// fits reports whether r's key and value, compressed with the tier's
// codec, are within limit bytes.
func (s *slot) fits(r *kgo.Record, limit int32) bool {
	src := append(append(make([]byte, 0, len(r.Key)+len(r.Value)), r.Key...), r.Value...)
	size := len(src)
	if c := kafkaconn.Compressor(s.l.key.client.Compression); c != nil {
		var buf bytes.Buffer
		out, _ := c.Compress(&buf, src)
		size = len(out)
	}
	return size <= int(limit)
}

// tooLarge reports a record that kgo would refuse for its size before
// compression (its key and value alone are over the producer's limit for
// its topic) and that would not fit the topic compressed either: the
// output dead-letters it at once, as commitWith would once kgo refused
// it, without the failed write, the abort and the rebuild of the
// transaction, which held the slot's other partitions up for each such
// record.
func (s *slot) tooLarge(p *part, r *kgo.Record) bool {
	if len(r.Key)+len(r.Value) <= int(s.l.batchMax(p.job)) || s.wide[p.topic] {
		return false // the usual case, first: this is every record's path
	}
	return !s.fits(r, p.job.targetMax())
}

func (s *slot) failedWith(p *part) error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if pe := s.failed[p]; pe != nil {
		return pe.err
	}
	return errors.New("its records failed")
}

func (s *slot) tryCommit(ctx context.Context, rebuild, all bool) error {
	if err := s.begin(); err != nil {
		return err
	}
	if rebuild {
		for p := range s.txnParts {
			p.copies, p.dead = p.copies[:0], 0
			for _, r := range p.pending {
				if err := s.emit(ctx, p, r); err != nil {
					return err
				}
			}
		}
	}
	s.saving = s.saving[:0]
	var ck *kgo.Record // one of the transaction's checkpoints
	for p := range s.moved {
		if all || s.txnParts[p] || p.next-max(p.saved, 0) >= maxUnsaved {
			s.saving = append(s.saving, p)
			ck = checkpoint.Record(p.job.spec.ID, p.name, s.checkpointValue(p, false))
			p.ck = ck
			s.produce(ctx, ck, nil, nil, -1)
		}
	}
	if err := s.settle(ctx); err != nil {
		return err
	}
	if err := s.prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return err
	}
	return s.landed(ctx, ck)
}

// landed reads back the first commit of each producer of the slot that
// carries copies or checkpoints (kafkaconn.Landed): kgo v1.22 was seen
// to end a new producer's first transaction with an abort while reporting
// a commit, and the slot would go on from positions whose copies are not
// there. A slot's first transaction is most often its claims', which are
// read back anyway, but a producer opened for wide batches (see
// commitWith) writes copies first.
func (s *slot) landed(ctx context.Context, ck *kgo.Record) error {
	if s.proven || ck == nil {
		return nil
	}
	if err := kafkaconn.Landed(ctx, s.l.dst, ck); err != nil {
		return fmt.Errorf("%w: writing it again", err)
	}
	s.proven = true
	return nil
}

// abort ends the open transaction without its writes.
func (s *slot) abort(ctx context.Context) error {
	s.inTxn = false
	if err := s.prod.AbortBufferedRecords(ctx); err != nil {
		return err
	}
	s.inflight.Wait()
	s.copies.reclaim()
	return s.prod.EndTransaction(ctx, kgo.TryAbort)
}

// committed accounts for a committed transaction: every copy's end-to-end
// latency is now minus its source timestamp.
func (s *slot) committed() {
	s.copies.reclaim()
	now := time.Now()
	for p := range s.txnParts {
		mx := p.job.env.Metrics
		if len(p.copies) > 0 {
			samples := make([]metrics.Sample, len(p.copies))
			for i, c := range p.copies {
				samples[i] = metrics.Sample{Latency: now.Sub(c.at), Bytes: c.bytes}
			}
			mx.ObserveAll(p.name, 0, samples...)
		}
		if p.dead > 0 {
			mx.Count(p.name, metrics.DeadLetters, p.dead)
		}
		if len(p.poison) > 0 {
			for _, r := range p.pending {
				delete(p.poison, r.Offset)
			}
		}
		recycle(p.pending)
		p.pending, p.copies, p.dead, p.careful = p.pending[:0], p.copies[:0], 0, false
	}
	for _, p := range s.saving {
		p.saved, p.last, p.ck = p.next, p.ck.Offset, nil
		delete(s.moved, p)
	}
	for p := range s.txnParts {
		p.job.env.Metrics.SetLag(p.name, p.lso-p.next)
	}
	s.l.mended(s.txnParts)
	if s.main == nil {
		s.kin.forgive(s.txnParts)
	} else {
		for p := range s.txnParts {
			delete(s.tries, p.at())
		}
		s.handBack(s.txnParts)
	}
	s.reset()
}

// reset forgets the transaction just ended.
func (s *slot) reset() {
	clear(s.txnParts)
	s.saving = s.saving[:0]
	s.inTxn, s.saveDue, s.txnAt, s.nRecs, s.nBytes = false, false, time.Time{}, 0, 0
}

// evict takes a partition that cannot be written out of the slot; what it
// had in the transaction is dropped (it is copied again from its
// checkpoint). A target topic that is gone fails its job, whose next start
// makes it again. Otherwise the job stays, in error while its other
// partitions are copied: a slot hands the partition to its companion, a
// companion tries it again after a backoff (tryAgain). Starting the job
// again instead, its every start released and claimed its healthy
// partitions in their slots, and the partitions sharing those slots waited.
func (s *slot) evict(p *part, err error) {
	s.kin.evict(p.at())
	s.leave(p)
	err = fmt.Errorf("partition %d of %s cannot be written to %s: %w", p.partition, p.topic, p.job.spec.Mirror.To, err)
	if topicGone(err) || s.stopping {
		s.l.log.Warn("partition cannot be written; its job fails and starts again", "topic", p.topic, "partition", p.partition, "error", err)
		p.job.fail(err)
		return
	}
	s.l.broke(p, err)
	if s.main == nil {
		s.l.log.Warn("partition cannot be written; the slot's companion tries it again", "topic", p.topic, "partition", p.partition, "error", err)
		s.startCompanion().add([]*part{newPart(p.job, p.partition)})
		return
	}
	s.tryAgain(p)
}

// leave forgets a partition: it leaves the open transaction, the routing
// and the fetching. Its last record is noted for the companion or the
// slot to take it from (kin.let).
func (s *slot) leave(p *part) {
	if p.last >= 0 {
		s.kin.let(p.at(), s.txnID, p.last)
	}
	delete(s.parts, p)
	delete(s.txnParts, p)
	delete(s.moved, p)
	s.l.fetcher(s.n).remove(p)
	s.l.stopped(p)
}

// leaveAll lets every partition go as the slot stops or fails, committing
// what is pending first when it still may.
func (s *slot) leaveAll(ctx context.Context, commit bool) {
	s.stopping = true
	defer func() { s.stopping = false }()
	if s.main == nil {
		s.stopCompanion(commit)
	}
	if commit && s.prod != nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := s.commitWith(cctx, true); err != nil {
			s.l.log.Warn("last commit before stopping failed; the next owner resumes from the previous checkpoint", "slot", s.n, "error", err)
		}
		cancel()
	}
	for p := range s.parts {
		s.leave(p)
	}
	s.l.unwait(s.waiting)
	s.waiting = nil
	clear(s.moved)
	s.reset()
}

// release commits what is pending of jobs leaving the lane and writes a
// release for each of their partitions, in one transaction, so that a lane
// they move to takes them at once.
func (s *slot) release(ctx context.Context, leaving map[*laneJob]bool) error {
	var mine []*part
	for p := range s.parts {
		if leaving[p.job] {
			mine = append(mine, p)
		}
	}
	s.waiting = slices.DeleteFunc(s.waiting, func(p *part) bool { return leaving[p.job] })
	if len(mine) == 0 {
		return nil
	}
	if err := s.commit(ctx); err != nil {
		return err
	}
	if err := s.writeReleases(ctx, mine); err != nil {
		return err
	}
	for _, p := range mine {
		s.leave(p)
	}
	return nil
}

// writeReleases commits a release of each of parts, with no transaction
// open.
func (s *slot) writeReleases(ctx context.Context, parts []*part) error {
	if err := s.begin(); err != nil {
		return err
	}
	for _, p := range parts {
		p.ck = checkpoint.Record(p.job.spec.ID, p.name, s.checkpointValue(p, true))
		s.produce(ctx, p.ck, nil, nil, -1)
	}
	if err := s.settle(ctx); err != nil {
		return err
	}
	if err := s.prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return err
	}
	for _, p := range parts {
		p.last, p.ck = p.ck.Offset, nil
	}
	s.reset()
	return nil
}

// topicGone reports errors that say the target topic is not there: its
// job starts again, which creates it.
func topicGone(err error) bool {
	return errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID)
}

// retriable reports produce errors that a retry of the transaction may get
// past, unless the partition alone has them (see alone).
func retriable(err error) bool {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	return !errors.Is(err, kgo.ErrRecordTimeout) && !errors.Is(err, kgo.ErrRecordRetries)
}

// fenced reports errors that mean another producer took over the
// transactional ID: the slot is no longer ours.
func fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed) || errors.Is(err, kgo.ErrClientClosed)
}

// slotOf is the slot a partition of a topic belongs to: consecutive
// partitions go to different slots, so a topic's partitions spread over the
// processes of a shard.
func slotOf(topic string, partition int32) int {
	h := fnv.New32a()
	h.Write([]byte(topic))
	return int((h.Sum32() + uint32(partition)) % systopics.SlotCount)
}
