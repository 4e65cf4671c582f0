package kafkaconn

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadToEnd calls fn for every committed record of the topic's partitions
// (all of them when parts is empty), from the start up to the end offsets
// found on entry. It waits for transactions open at that moment to end, so
// it sees everything committed before it was called. Control records are
// not passed to fn. One client, made for the read, lists the end offsets
// and reads; Readers keeps clients for reads that recur.
func ReadToEnd(ctx context.Context, opts []kgo.Opt, topic string, parts []int32, fn func(*kgo.Record)) error {
	rs := NewReaders(opts)
	defer rs.Close()
	return rs.ReadToEnd(ctx, topic, parts, fn)
}

// Readers lends clients to reads to the end (ReadToEnd) and keeps them
// for the next reads: a client is a few connections and metadata requests
// to the brokers, and a mirror lane reads its checkpoints twice at each
// start of a job, of a failing job too. Safe for concurrent use: each read
// has a client to itself.
type Readers struct {
	opts []kgo.Opt

	mu     sync.Mutex
	idle   []*kgo.Client
	closed bool
}

// maxIdleReaders is how many clients Readers keeps between reads.
const maxIdleReaders = 4

// NewReaders returns Readers of the cluster that opts reach.
func NewReaders(opts []kgo.Opt) *Readers { return &Readers{opts: opts} }

// ReadToEnd is the package's ReadToEnd with a client of rs.
func (rs *Readers) ReadToEnd(ctx context.Context, topic string, parts []int32, fn func(*kgo.Record)) error {
	cl, err := rs.get()
	if err != nil {
		return err
	}
	read, err := readToEnd(ctx, cl, topic, parts, fn)
	if len(read) > 0 {
		cl.RemoveConsumePartitions(map[string][]int32{topic: read})
	}
	rs.put(cl, err == nil)
	return err
}

// Close closes the kept clients; reads after it fail.
func (rs *Readers) Close() {
	rs.mu.Lock()
	idle := rs.idle
	rs.idle, rs.closed = nil, true
	rs.mu.Unlock()
	for _, cl := range idle {
		cl.Close()
	}
}

func (rs *Readers) get() (*kgo.Client, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed {
		return nil, kgo.ErrClientClosed
	}
	if n := len(rs.idle); n > 0 {
		cl := rs.idle[n-1]
		rs.idle = rs.idle[:n-1]
		return cl, nil
	}
	return committedReader(rs.opts, "", nil)
}

// put keeps a client after a read that ended well (one that failed may
// hold fetches of the partitions it read), up to maxIdleReaders.
func (rs *Readers) put(cl *kgo.Client, ok bool) {
	rs.mu.Lock()
	if ok && !rs.closed && len(rs.idle) < maxIdleReaders {
		rs.idle = append(rs.idle, cl)
		cl = nil
	}
	rs.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
}

// readToEnd reads with cl, a client that consumes nothing yet, and returns
// the partitions it added for the read.
func readToEnd(ctx context.Context, cl *kgo.Client, topic string, parts []int32, fn func(*kgo.Record)) (read []int32, err error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	if ends.Error() != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, ends.Error())
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
			read = append(read, o.Partition)
		}
	})
	if len(remaining) == 0 {
		return nil, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: start})
	for len(remaining) > 0 {
		fetches, err := poll(ctx, cl)
		if err != nil {
			return read, err
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
	return read, nil
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
