package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/checkpoint"
	"github.com/ferry-pipelines/ferry/runtime/dlq"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// Bounds of one transaction besides the tier's commit interval: its source
// records are kept until it commits, to rebuild it after an abort.
const (
	maxTxnRecords = 20000
	maxTxnBytes   = 8 << 20
)

// position is the value of a partition's checkpoint: the next source
// offset to copy.
type position struct {
	Next int64 `json:"next"`
}

// batch is what the poll loop hands a worker: records of its partition and
// the partition's last stable offset, for lag.
type batch struct {
	records []*kgo.Record
	lso     int64
}

// worker copies one source partition to the same partition of the target,
// in transactions that also carry its checkpoint. Its transactional ID is
// the job's and the partition's, so whoever takes the partition over fences
// it, on this process or another.
type worker struct {
	m    *job
	part int32
	name string // the partition as metrics name it
	prod *kgo.Client

	in   chan batch
	quit chan bool // true: commit what is pending, then stop; false: abort
	done chan struct{}

	next    int64 // next source offset to take
	saved   int64 // next offset as of the last committed checkpoint
	lso     int64
	inTxn   bool
	pending []*kgo.Record // source records of the open transaction
	// Of the open transaction's output: the copies (source time and size,
	// for latency at commit), records filtered by the loop rule, dead
	// letters.
	copies   []copied
	filtered int64
	dead     int64
	bytes    int
	poison   map[int64]error // source offsets that can never be written
	inflight sync.WaitGroup  // produces whose promise has not run yet
	failMu   sync.Mutex
	failure  error // the first failed produce of the open transaction
}

// produceError is a produce that failed, with the source offset whose
// output it was.
type produceError struct {
	offset int64
	err    error
}

func (e *produceError) Error() string {
	return fmt.Sprintf("offset %d: %v", e.offset, e.err)
}

func (e *produceError) Unwrap() error { return e.err }

func newWorker(m *job, part int32, prod *kgo.Client) *worker {
	return &worker{
		m: m, part: part, name: strconv.Itoa(int(part)), prod: prod,
		in: make(chan batch, 4), quit: make(chan bool, 1), done: make(chan struct{}),
		poison: map[int64]error{},
	}
}

// run processes batches until told to stop.
func (w *worker) run() {
	defer close(w.done)
	defer w.prod.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	interval := w.m.spec.Client.CommitInterval.D()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case commit := <-w.quit:
			if commit {
				cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
				if err := w.commit(cctx); err != nil {
					w.m.env.Logger.Warn("last commit before stopping failed; the next owner resumes from the previous checkpoint", "partition", w.part, "error", err)
				}
				ccancel()
			}
			return
		case b := <-w.in:
			if err := w.process(ctx, b); err != nil {
				w.m.fail(fmt.Errorf("partition %d: %w", w.part, err))
				return
			}
		case <-tick.C:
			if err := w.commit(ctx); err != nil {
				w.m.fail(fmt.Errorf("partition %d: %w", w.part, err))
				return
			}
		}
	}
}

// deliver hands records to the worker; false when it has stopped.
func (w *worker) deliver(ctx context.Context, b batch) bool {
	select {
	case w.in <- b:
		return true
	case <-w.done:
	case <-ctx.Done():
	}
	return false
}

// stop stops the worker and waits for it: commit what is pending when the
// partition is still ours (a revoke, a shutdown), abort when it is lost.
func (w *worker) stop(commit bool) {
	select {
	case w.quit <- commit:
	default:
	}
	<-w.done
}

func (w *worker) process(ctx context.Context, b batch) error {
	w.lso = b.lso
	for _, r := range b.records {
		if r.Offset < w.next {
			continue // fetched before our checkpoint moved on
		}
		if r.Attrs.IsControl() {
			// A transaction marker: nothing to copy, but the position moves
			// past it, so that lag reads 0 when all is copied.
			w.next = r.Offset + 1
			continue
		}
		if err := w.begin(); err != nil {
			return err
		}
		w.pending = append(w.pending, r)
		w.bytes += len(r.Key) + len(r.Value)
		w.next = r.Offset + 1
		if err := w.emit(ctx, r, false); err != nil {
			return err
		}
		if len(w.pending) >= maxTxnRecords || w.bytes >= maxTxnBytes {
			if err := w.commit(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *worker) begin() error {
	if w.inTxn {
		return nil
	}
	if err := w.prod.BeginTransaction(); err != nil {
		return err
	}
	w.failMu.Lock()
	w.failure = nil // the failures of an aborted transaction are handled
	w.failMu.Unlock()
	w.copies, w.filtered, w.dead = w.copies[:0], 0, 0
	w.inTxn = true
	return nil
}

// emit writes the output of one source record into the open transaction:
// its copy, its dead letter, or nothing when it is skipped. Careful emits
// wait for each write, so that a failure names its record exactly.
func (w *worker) emit(ctx context.Context, r *kgo.Record, careful bool) error {
	out := w.output(r)
	if out == nil {
		return nil
	}
	if careful {
		if err := w.prod.ProduceSync(ctx, out).FirstErr(); err != nil {
			return &produceError{offset: r.Offset, err: err}
		}
		return nil
	}
	w.produce(ctx, out, r.Offset)
	return nil
}

// produce writes a record asynchronously, keeping the first failure of the
// transaction. Its promise is counted, because kgo calls the promise of a
// record that fails before it is buffered (one too large, say) after Flush
// may already have returned.
func (w *worker) produce(ctx context.Context, out *kgo.Record, sourceOffset int64) {
	w.inflight.Add(1)
	w.prod.Produce(ctx, out, func(_ *kgo.Record, err error) {
		defer w.inflight.Done()
		if err == nil {
			return
		}
		w.failMu.Lock()
		if w.failure == nil {
			w.failure = &produceError{offset: sourceOffset, err: err}
		}
		w.failMu.Unlock()
	})
}

// settle waits until every record of the transaction has its outcome and
// returns the first failure.
func (w *worker) settle(ctx context.Context) error {
	if err := w.prod.Flush(ctx); err != nil {
		return err
	}
	w.inflight.Wait()
	w.failMu.Lock()
	defer w.failMu.Unlock()
	return w.failure
}

// output is what a source record becomes in the target datacenter.
func (w *worker) output(r *kgo.Record) *kgo.Record {
	spec := w.m.spec
	verdict, why := classify(r, w.m.origins)
	switch {
	case verdict == skipRecord:
		w.filtered++
		return nil
	case verdict == badOrigin:
		w.dead++
		target := *r
		target.Headers = append([]kgo.RecordHeader(nil), r.Headers...)
		return dlq.Record(&target, w.letter(r, "MALFORMED_ORIGIN_HEADER", why))
	case w.poison[r.Offset] != nil:
		w.dead++
		err := w.poison[r.Offset]
		return dlq.Record(copyOf(r, spec.Mirror.From), w.letter(r, dlq.Class(err), fmt.Sprintf("cannot write to %s in %s: %v", r.Topic, spec.Mirror.To, err)))
	}
	w.copies = append(w.copies, copied{at: r.Timestamp, bytes: len(r.Key) + len(r.Value)})
	return copyOf(r, spec.Mirror.From)
}

// copied is a copy in the open transaction, for its latency at commit.
type copied struct {
	at    time.Time
	bytes int
}

// letter says why a source record is dead-lettered.
func (w *worker) letter(r *kgo.Record, class, msg string) dlq.Failure {
	return dlq.Failure{Job: w.m.spec.ID, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Class: class, Message: msg}
}

// commit ends the open transaction with a checkpoint at the next source
// offset. A record that fails permanently (too large for the target topic,
// say) is found by rebuilding the transaction one record at a time and is
// dead-lettered in its place; any other failure is retried after a backoff
// and never dead-lettered.
func (w *worker) commit(ctx context.Context) error {
	if !w.inTxn && w.next == w.saved {
		return nil
	}
	rebuild, careful := false, false
	backoff := 100 * time.Millisecond
	for {
		err := w.tryCommit(ctx, rebuild, careful)
		if err == nil {
			w.committed()
			return nil
		}
		if ctx.Err() != nil || fenced(err) {
			return err
		}
		if aerr := w.prod.EndTransaction(ctx, kgo.TryAbort); aerr != nil && (ctx.Err() != nil || fenced(aerr)) {
			return aerr
		}
		w.inTxn = false
		var pe *produceError
		switch {
		case errors.As(err, &pe) && dlq.Permanent(pe.err) && careful:
			if w.poison[pe.offset] != nil {
				return fmt.Errorf("cannot dead-letter source offset %d: %w", pe.offset, pe.err)
			}
			w.poison[pe.offset] = pe.err
		case errors.As(err, &pe) && dlq.Permanent(pe.err):
			careful = true
		default:
			w.m.env.Metrics.Count(w.name, metrics.Retries, 1)
			w.m.env.Logger.Warn("transaction failed; retrying", "partition", w.part, "error", err, "in", backoff)
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

func (w *worker) tryCommit(ctx context.Context, rebuild, careful bool) error {
	if err := w.begin(); err != nil {
		return err
	}
	if rebuild {
		for _, r := range w.pending {
			if err := w.emit(ctx, r, careful); err != nil {
				return err
			}
		}
	}
	value, _ := json.Marshal(position{Next: w.next})
	w.produce(ctx, checkpoint.Record(w.m.spec.ID, w.name, value), -1)
	if err := w.settle(ctx); err != nil {
		return err
	}
	return w.prod.EndTransaction(ctx, kgo.TryCommit)
}

// committed accounts for a committed transaction: every copied record's
// end-to-end latency is now minus its source timestamp.
func (w *worker) committed() {
	now := time.Now()
	mx := w.m.env.Metrics
	samples := make([]metrics.Sample, len(w.copies))
	for i, c := range w.copies {
		samples[i] = metrics.Sample{Latency: now.Sub(c.at), Bytes: c.bytes}
	}
	if len(samples) > 0 {
		mx.ObserveAll(w.name, 0, samples...)
	}
	if w.filtered > 0 {
		mx.Count(w.name, metrics.Filtered, w.filtered)
	}
	if w.dead > 0 {
		mx.Count(w.name, metrics.DeadLetters, w.dead)
	}
	for _, r := range w.pending {
		delete(w.poison, r.Offset)
	}
	mx.SetLag(w.name, w.lso-w.next)
	w.inTxn = false
	w.pending = w.pending[:0]
	w.bytes = 0
	w.saved = w.next
}

// fenced reports errors that mean another producer took over the
// transactional ID: the partition is no longer ours.
func fenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed) || errors.Is(err, kgo.ErrClientClosed)
}
