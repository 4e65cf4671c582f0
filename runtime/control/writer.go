package control

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// writerID is the transactional ID every executor writes definitions
// with. Sharing one ID is what serializes writers across executors: a
// writer takes the ID (InitProducerID), which bumps its epoch, fences the
// previous holder and aborts that holder's open transaction, before it
// reads the state it checks a change against. A commit therefore succeeds
// only when no other writer took the ID after this writer read, so a check
// is never made against a stale state. See the package documentation.
const writerID = "ferry.definitions.writer"

// writer commits changes to ferry.definitions, one transaction per change.
type writer struct {
	opts  []kgo.Opt
	cl    *kgo.Client
	fresh bool // no commit yet: the next is read back (see commit)
}

// take makes this writer the holder of writerID, unless it already is as
// far as it knows; a writer fenced since finds out when it commits.
func (w *writer) take(ctx context.Context) error {
	if w.cl != nil {
		return nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(w.opts),
		kgo.TransactionalID(writerID),
		// A writer that dies mid-transaction blocks read_committed readers
		// until the next writer fences it, or until this timeout.
		kgo.TransactionTimeout(10*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)...)
	if err != nil {
		return err
	}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return fmt.Errorf("take the definitions writer ID: %w", err)
	}
	w.cl, w.fresh = cl, true
	return nil
}

// commit writes the records in one transaction and returns the offset of
// the last one. Any error leaves the writer to be taken again.
func (w *writer) commit(ctx context.Context, recs []*kgo.Record) (int64, error) {
	if err := w.cl.BeginTransaction(); err != nil {
		w.reset()
		return 0, err
	}
	res := w.cl.ProduceSync(ctx, recs...)
	commit := kgo.TryCommit
	if res.FirstErr() != nil {
		commit = kgo.TryAbort
	}
	endErr := w.cl.EndTransaction(ctx, commit)
	if err := res.FirstErr(); err != nil {
		w.reset()
		return 0, err
	}
	if endErr != nil {
		w.reset()
		return 0, endErr
	}
	last := res[len(res)-1].Record
	if w.fresh {
		// A new producer's first commit is read back before it is
		// acknowledged (see kafkaconn.Committed).
		ok, err := kafkaconn.Committed(ctx, w.opts, last)
		if err == nil && !ok {
			err = fmt.Errorf("the transaction of %s at offset %d was aborted although its commit answered", systopics.Definitions, last.Offset)
		}
		if err != nil {
			w.reset()
			return 0, err
		}
		w.fresh = false
	}
	return last.Offset, nil
}

func (w *writer) reset() {
	if w.cl != nil {
		w.cl.Close()
		w.cl = nil
	}
}

// endOffset is the high watermark of ferry.definitions: every record
// written before the call, committed or not, lies below it.
func endOffset(ctx context.Context, cl *kgo.Client) (int64, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, systopics.Definitions)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("end of %s: %w", systopics.Definitions, err)
	}
	o, _ := ends.Lookup(systopics.Definitions, 0)
	return o.Offset, nil
}
