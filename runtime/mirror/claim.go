package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-pipelines/ferry/runtime/checkpoint"
)

// position is the value of a partition's checkpoint: the next source offset
// to copy and the transactional ID that wrote it. A claim (written when a
// slot takes the partition) also names the record it follows; a release
// (written when a job leaves a lane) says the lane let the partition go.
type position struct {
	Next     int64  `json:"next"` // -1: from the start of the partition
	Writer   string `json:"writer,omitempty"`
	Base     *int64 `json:"base,omitempty"` // a claim: offset of the record it follows, -1 for none
	Released bool   `json:"released,omitempty"`
}

// holdTimeout is how long a partition last written by another lane is left
// to it: a partition that lane has neither released nor written for this
// long is taken over (its writer died, or left it without a release).
const holdTimeout = 2 * sessionTimeout

// legacyWriter is the transactional ID that wrote checkpoints before ferry
// shared producers: one per job and partition.
func legacyWriter(job string, part int32) string { return fmt.Sprintf("ferry.%s.%d", job, part) }

// found is what the checkpoints say of a partition a slot would take.
type found struct {
	pos    position
	offset int64 // of the latest record; -1 for none
	at     time.Time
}

// latest reads the newest record of each partition's checkpoint key.
func (s *slot) latest(ctx context.Context, parts []*part) (map[*part]found, map[string][]checkpoint.Entry, error) {
	hist, err := s.history(ctx, parts)
	if err != nil {
		return nil, nil, err
	}
	out := map[*part]found{}
	for _, p := range parts {
		f := found{pos: position{Next: -1}, offset: -1}
		if es := hist[p.key]; len(es) > 0 {
			e := es[len(es)-1]
			f.offset, f.at = e.Offset, e.Time
			if e.Value != nil {
				if err := json.Unmarshal(e.Value, &f.pos); err != nil {
					return nil, nil, fmt.Errorf("partition %d of %s: corrupt checkpoint %q: %w", p.partition, p.topic, e.Value, err)
				}
				if f.pos.Writer == "" {
					f.pos.Writer = legacyWriter(p.job.spec.ID, p.partition)
				}
			}
		}
		out[p] = f
	}
	return out, hist, nil
}

func (s *slot) history(ctx context.Context, parts []*part) (map[string][]checkpoint.Entry, error) {
	keys := map[string]bool{}
	var jobs []string
	for _, p := range parts {
		keys[p.key] = true
		jobs = append(jobs, p.job.spec.ID)
	}
	return checkpoint.History(ctx, s.l.readers, jobs, func(k string) bool { return keys[k] })
}

// acquire takes partitions for the slot. Taking a partition is a claim:
// read its latest checkpoint; fence the transactional ID that wrote it if
// that is another lane's (the slot's own was fenced when the slot was
// taken); commit a claim that names the record read; read back. The
// partition is the slot's when the record just before the claim is the one
// the claim names: nobody wrote the partition between the read and the
// claim, and nobody can after it without fencing the slot first. A
// partition another lane wrote recently and did not release is left to it
// (returned in held) until it releases the partition or holdTimeout passes
// without a write. Partitions whose claim lost to another are returned in
// lost. A slot that copies already takes partitions in stages instead (see
// claiming), of which acquire is all at once.
func (s *slot) acquire(ctx context.Context, parts []*part) (held, lost []*part, err error) {
	c := s.look(ctx, parts)
	if c.err == nil && len(c.parts) > 0 {
		c.claimed, c.err = s.writeClaims(ctx, c.parts, c.cur)
	}
	if c.err == nil {
		c.readBack(ctx, s)
	}
	if c.err != nil {
		return nil, nil, c.err
	}
	held, lost = c.judge()
	return held, lost, nil
}

// claiming is a taking of partitions (see acquire) by a slot that copies
// others meanwhile: the two reads of the checkpoints (tens of milliseconds
// each in a fleet's checkpoints) run off the slot's goroutine, which only
// commits the claims between its copies. Every start of a job held its
// partitions' slots that long otherwise, and every Tier 1 partition of
// those slots waited.
type claiming struct {
	gen     int              // the slot's incarnation that began it
	read    bool             // read back: judge it
	parts   []*part          // to claim
	held    map[*part]string // left to another lane's writer
	cur     map[*part]found  // their latest checkpoints
	claimed map[*part]int64  // the claims' offsets
	hist    map[string][]checkpoint.Entry
	err     error
}

// look reads the latest checkpoints of parts, leaves those another lane
// holds and fences the writers of the others, but for records with which
// the slot or its companion let the partition go (see quarantine.go). A
// companion hands a partition its slot wrote since back to the slot. It
// touches no state of the slot or of the parts but their plain mark: it
// may run on any goroutine.
func (s *slot) look(ctx context.Context, parts []*part) *claiming {
	c := &claiming{held: map[*part]string{}}
	if c.cur, _, c.err = s.latest(ctx, parts); c.err != nil {
		return c
	}
	fence := map[string]bool{}
	var back []*part
	for _, p := range parts {
		f := c.cur[p]
		w := f.pos.Writer
		switch {
		case w == "" || w == s.txnID || s.kin.knows(p.at(), w, f.offset):
		case s.main != nil && w == s.main.txnID:
			back = append(back, p)
			continue
		case w == companionTxnID(s.txnID):
			fence[w] = true // not how it let the partition go: a companion that is no longer ours
		case !f.pos.Released && time.Since(f.at) < holdTimeout:
			c.held[p] = w
			continue
		default:
			fence[w] = true
		}
		c.parts = append(c.parts, p)
	}
	if len(back) > 0 {
		for _, p := range back {
			p.plain = true
		}
		s.main.add(back)
	}
	for w := range fence {
		if err := s.fence(ctx, w); err != nil {
			c.err = fmt.Errorf("fencing %s: %w", w, err)
			return c
		}
	}
	return c
}

// readBack reads the checkpoints again once the claims are committed; like
// look, on any goroutine.
func (c *claiming) readBack(ctx context.Context, s *slot) {
	c.read = true
	if len(c.parts) > 0 {
		c.hist, c.err = s.history(ctx, c.parts)
	}
}

// judge sorts the partitions read back into those held by another lane
// and those whose claim lost, and sets the positions of the others, on the
// slot's goroutine.
func (c *claiming) judge() (held, lost []*part) {
	for p, w := range c.held {
		p.heldBy = w
		held = append(held, p)
	}
	for _, p := range c.parts {
		if !claimHolds(c.hist[p.key], c.claimed[p], c.cur[p].offset) {
			lost = append(lost, p)
			continue
		}
		p.next, p.saved, p.last = max(c.cur[p].pos.Next, 0), c.cur[p].pos.Next, c.claimed[p]
		p.fromStart = c.cur[p].pos.Next < 0
	}
	return held, lost
}

// claimHolds reports whether the claim at offset claim is the key's latest
// record and directly follows base (-1: the key's first record).
func claimHolds(es []checkpoint.Entry, claim, base int64) bool {
	for i, e := range es {
		if e.Offset != claim {
			continue
		}
		prev := int64(-1)
		if i > 0 {
			prev = es[i-1].Offset
		}
		return prev == base && i == len(es)-1
	}
	return false
}

// writeClaims commits one claim per partition and returns their offsets.
func (s *slot) writeClaims(ctx context.Context, parts []*part, cur map[*part]found) (map[*part]int64, error) {
	if err := s.prod.BeginTransaction(); err != nil {
		return nil, err
	}
	recs := make(map[*part]*kgo.Record, len(parts))
	for _, p := range parts {
		base := cur[p].offset
		v, _ := json.Marshal(position{Next: cur[p].pos.Next, Writer: s.txnID, Base: &base})
		r := checkpoint.Record(p.job.spec.ID, p.name, v)
		recs[p] = r
		s.produce(ctx, r, nil, nil, 0)
	}
	if err := s.settle(ctx); err != nil {
		_ = s.abort(ctx)
		return nil, err
	}
	if err := s.prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return nil, err
	}
	out := make(map[*part]int64, len(recs))
	for p, r := range recs {
		out[p] = r.Offset
	}
	return out, nil
}

// fence fences a transactional ID of another lane, as initialising a
// producer with it would: its open transaction is aborted and its writer's
// epoch ends.
func (s *slot) fence(ctx context.Context, txnID string) error {
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID = &txnID
		req.TransactionTimeoutMillis = int32(txnTimeout / time.Millisecond)
		req.ProducerID, req.ProducerEpoch = -1, -1
		resp, err := req.RequestWith(ctx, s.l.adm)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err == nil {
			s.l.log.Info("fenced the previous writer of partitions this slot takes", "slot", s.n, "writer", txnID)
			return nil
		}
		if !kerr.IsRetriable(err) && !errors.Is(err, kerr.ConcurrentTransactions) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// checkpointValue is a partition's checkpoint as the slot writes it with
// its copies (or, released, when the partition leaves the lane).
func (s *slot) checkpointValue(p *part, released bool) []byte {
	v, _ := json.Marshal(position{Next: p.next, Writer: s.txnID, Released: released})
	return v
}

// txnID is a slot's transactional ID: the lane's and the slot's.
func slotTxnID(lane string, n int) string { return lane + ".s" + strconv.Itoa(n) }
