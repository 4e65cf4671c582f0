package kafkaconn

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadToEnd calls fn for every committed record of the topic's partitions
// (all of them when parts is empty), from the start up to the end offsets
// found on entry. It waits for transactions open at that moment to end, so
// it sees everything committed before it was called. Control records are
// not passed to fn. One client lists the end offsets and reads: every
// claim of a mirror slot reads checkpoints twice, and a client is a few
// connections and metadata requests to the brokers.
func ReadToEnd(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, fn func(*kgo.Record)) error {
	cl, err := committedReader(opts, topic, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	if ends.Error() != nil {
		return fmt.Errorf("end offsets of %s: %w", topic, ends.Error())
	}
	want := map[int32]bool{}
	for _, p := range parts {
		want[p] = true
	}
	start := map[int32]kgo.Offset{}
	remaining := map[int32]int64{} // partition -> end offset still to reach
	ends.Each(func(o kadm.ListedOffset) {
		if (len(want) == 0 || want[o.Partition]) && o.Offset > 0 {
			start[o.Partition] = kgo.NewOffset().AtStart()
			remaining[o.Partition] = o.Offset
		}
	})
	if len(remaining) == 0 {
		return nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: start})
	for len(remaining) > 0 {
		fetches, err := poll(ctx, cl)
		if err != nil {
			return err
		}
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := remaining[r.Partition]
			if !ok {
				return
			}
			// A record at or past the end: the last offsets before it
			// may be an aborted transaction's, which read_committed
			// never shows, so the end is passed rather than met.
			if r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
			if r.Offset < end && !r.Attrs.IsControl() {
				fn(r)
			}
		})
	}
	return nil
}

// ErrFirstCommitLost is a new producer's first commit that kgo acknowledged
// and Committed did not find: nothing of its transaction is visible.
var ErrFirstCommitLost = errors.New("the first Kafka transaction of a new producer was acknowledged but not committed")

// Landed is Committed for a new producer's first commit, as an error: nil
// when rec is there, ErrFirstCommitLost (saying where rec should be) when
// it is not.
func Landed(ctx context.Context, opts []kgo.Opt, rec *kgo.Record) error {
	ok, err := Committed(ctx, opts, rec)
	if err != nil {
		return fmt.Errorf("reading back the first commit: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w (its record at offset %d of %s is not there)", ErrFirstCommitLost, rec.Offset, rec.Topic)
	}
	return nil
}

// Committed reports whether rec, which a transaction just committed (kgo
// set its offset), is there for read_committed readers: it reads rec's
// partition from rec's offset. kgo v1.22 was seen to end a new producer's
// first transaction with an abort although EndTransaction returned no
// error ("no produce succeeded in this transaction but produces were
// attempted"): a writer that acknowledges its first commit, or builds on
// it, reads it back first. Like ReadToEnd it waits for transactions open
// before rec to end.
func Committed(ctx context.Context, opts []kgo.Opt, rec *kgo.Record) (bool, error) {
	cl, err := committedReader(opts, rec.Topic, map[int32]kgo.Offset{rec.Partition: kgo.NewOffset().At(rec.Offset)})
	if err != nil {
		return false, err
	}
	defer cl.Close()
	for {
		fetches, err := poll(ctx, cl)
		if err != nil {
			return false, err
		}
		// The first record at or past rec's offset decides: rec itself,
		// or (rec aborted, which read_committed never shows) a later one,
		// the abort's marker at the latest.
		for it := fetches.RecordIter(); !it.Done(); {
			r := it.Next()
			if r.Offset >= rec.Offset {
				return r.Offset == rec.Offset && !r.Attrs.IsControl(), nil
			}
		}
	}
}

// committedReader reads topic's partitions from start (none yet when
// start is nil), read_committed, with the transaction markers: a marker
// shows where an aborted transaction's records, which read_committed never
// shows, ended.
func committedReader(opts []kgo.Opt, topic string, start map[int32]kgo.Offset) (*kgo.Client, error) {
	opts = append(append([]kgo.Opt(nil), opts...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if start != nil {
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}))
	}
	return kgo.NewClient(opts...)
}

// poll returns cl's next fetches, or the context's error or the first
// partition's error.
func poll(ctx context.Context, cl *kgo.Client) (kgo.Fetches, error) {
	fetches := cl.PollFetches(ctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, fe := range fetches.Errors() {
		return nil, fmt.Errorf("read %s[%d]: %w", fe.Topic, fe.Partition, fe.Err)
	}
	return fetches, nil
}
