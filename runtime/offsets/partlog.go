package offsets

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// datacenter is one side of a translation: a client shared by every
// partition read there, and the topic metadata that routes reads to
// partition leaders.
type datacenter struct {
	name string
	cl   *kgo.Client
	adm  *kadm.Client

	mu   sync.Mutex
	meta map[string]kadm.TopicDetail
}

func newDatacenter(name string, opts []kgo.Opt) (*datacenter, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("datacenter %s: %w", name, err)
	}
	return &datacenter{name: name, cl: cl, adm: kadm.NewClient(cl), meta: map[string]kadm.TopicDetail{}}, nil
}

// topic returns the topic's metadata, loading it when not known yet or
// when refresh asks for it (a leader moved).
func (d *datacenter) topic(ctx context.Context, topic string, refresh bool) (kadm.TopicDetail, error) {
	d.mu.Lock()
	td, ok := d.meta[topic]
	d.mu.Unlock()
	if ok && !refresh {
		return td, nil
	}
	md, err := d.adm.Metadata(ctx, topic)
	if err != nil {
		return td, fmt.Errorf("metadata of %s in %s: %w", topic, d.name, err)
	}
	td, ok = md.Topics[topic]
	switch {
	case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
		return td, fmt.Errorf("topic %s does not exist in %s", topic, d.name)
	case td.Err != nil:
		return td, fmt.Errorf("metadata of %s in %s: %w", topic, d.name, td.Err)
	}
	d.mu.Lock()
	d.meta[topic] = td
	d.mu.Unlock()
	return td, nil
}

// bounds returns, per partition of topic, the log start offset and the
// last stable offset: the committed records a read_committed consumer can
// read lie between them.
func (d *datacenter) bounds(ctx context.Context, topic string) (map[int32][2]int64, error) {
	starts, err := d.adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil, fmt.Errorf("topic %s does not exist in %s", topic, d.name)
	}
	if err != nil {
		return nil, fmt.Errorf("start offsets of %s in %s: %w", topic, d.name, err)
	}
	ends, err := d.adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s in %s: %w", topic, d.name, err)
	}
	out := map[int32][2]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(topic, o.Partition)
		out[o.Partition] = [2]int64{max(s.Offset, 0), o.Offset}
	})
	return out, nil
}

// hasRecords reports whether the partition holds a committed record in
// [from, to).
func (d *datacenter) hasRecords(ctx context.Context, topic string, part int32, from, to int64) (bool, error) {
	l := &partLog{dc: d, topic: topic, part: part, start: from, end: to, maxBytes: 64 << 10}
	_, ok, err := l.first(ctx, from, to, func(entry) bool { return true })
	return ok, err
}

// chunk is what one fetch returned: every committed record with an offset
// in [from, next), control records and aborted transactions left out.
type chunk struct {
	from, next int64
	entries    []entry
}

// cachedChunks is how many recent fetches a partition keeps: a binary search
// that has narrowed to a few thousand offsets reads no more.
const cachedChunks = 4

// retries bounds the attempts of one fetch that meets a retriable error (a
// leader moving, a broker restarting).
const retries = 6

// partLog reads the committed records of one partition in one datacenter
// at any offset, the way a read_committed consumer sees them. Reads go
// straight to the partition's leader with Fetch requests, so seeking
// anywhere costs one round trip and no consumer group is involved.
type partLog struct {
	dc       *datacenter
	topic    string
	part     int32
	origins  map[string]bool
	start    int64 // the log start offset
	end      int64 // the last stable offset when translation began
	maxBytes int32

	cache   []chunk
	records int64 // records decoded
}

// firstFetchBytes bounds the first fetch of a scan; each further fetch of
// the same scan doubles, up to maxBytes. A probe of a binary search mostly
// needs the next few records only.
const firstFetchBytes = 16 << 10

// scan calls fn with the committed records of [from, to) in order, until fn
// returns false, to is reached, or the partition's committed records end.
func (l *partLog) scan(ctx context.Context, from, to int64, fn func(entry) bool) error {
	off := max(from, l.start)
	size := min(firstFetchBytes, l.maxBytes)
	for off < to {
		ch, err := l.chunkAt(ctx, off, size)
		if err != nil {
			return err
		}
		size = min(2*size, l.maxBytes)
		for _, e := range ch.entries {
			if e.offset < off {
				continue
			}
			if e.offset >= to || !fn(e) {
				return nil
			}
		}
		if ch.next <= off {
			return nil
		}
		off = ch.next
	}
	return nil
}

// first returns the first record of [from, to) that match accepts.
func (l *partLog) first(ctx context.Context, from, to int64, match func(entry) bool) (entry, bool, error) {
	var found entry
	var ok bool
	err := l.scan(ctx, from, to, func(e entry) bool {
		found, ok = e, match(e)
		return !ok
	})
	return found, ok, err
}

// count returns how many records of [from, to) match accepts.
func (l *partLog) count(ctx context.Context, from, to int64, match func(entry) bool) (int64, error) {
	var n int64
	err := l.scan(ctx, from, to, func(e entry) bool {
		if match(e) {
			n++
		}
		return true
	})
	return n, err
}

func (l *partLog) chunkAt(ctx context.Context, off int64, size int32) (chunk, error) {
	for _, ch := range l.cache {
		if ch.from <= off && off < ch.next {
			return ch, nil
		}
	}
	ch, err := l.fetch(ctx, off, size)
	if err != nil {
		return ch, err
	}
	if ch.next > ch.from {
		if len(l.cache) == cachedChunks {
			l.cache = append(l.cache[:0], l.cache[1:]...)
		}
		l.cache = append(l.cache, ch)
	}
	return ch, nil
}

// fetch reads the committed records from off on, as many as a Fetch
// response of size bytes holds (at least one batch). At the last stable
// offset it returns an empty chunk ending where it starts.
func (l *partLog) fetch(ctx context.Context, off int64, size int32) (chunk, error) {
	end := chunk{from: off, next: off}
	var last error
	for attempt := 0; attempt < retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return end, ctx.Err()
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		td, err := l.dc.topic(ctx, l.topic, attempt > 0)
		if err != nil {
			return end, err
		}
		pd, ok := td.Partitions[l.part]
		if !ok {
			return end, fmt.Errorf("%s has no partition %d in %s", l.topic, l.part, l.dc.name)
		}
		resp, err := l.dc.cl.Broker(int(pd.Leader)).Request(ctx, l.request(td.ID, off, size))
		if err != nil {
			if ctx.Err() != nil {
				return end, ctx.Err()
			}
			last = err
			continue
		}
		rp, err := l.partition(resp.(*kmsg.FetchResponse))
		if err != nil {
			return end, err
		}
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			Offset:         off,
			IsolationLevel: kgo.ReadCommitted(),
			Topic:          l.topic,
			Partition:      l.part,
		}, rp, decompressor, nil)
		switch {
		case errors.Is(fp.Err, kerr.OffsetOutOfRange) && rp.LogStartOffset > off:
			// Retention deleted records since translation began.
			l.start = rp.LogStartOffset
			return chunk{from: off, next: rp.LogStartOffset}, nil
		case errors.Is(fp.Err, kerr.OffsetOutOfRange):
			return end, nil
		case kerr.IsRetriable(fp.Err):
			last = fp.Err
			continue
		case fp.Err != nil:
			return end, fmt.Errorf("read %s[%d] in %s at offset %d: %w", l.topic, l.part, l.dc.name, off, fp.Err)
		}
		ch := chunk{from: off, next: max(next, off), entries: make([]entry, 0, len(fp.Records))}
		for _, r := range fp.Records {
			ch.entries = append(ch.entries, entryOf(r, l.dc.name, l.origins))
		}
		l.records += int64(len(fp.Records))
		return ch, nil
	}
	return end, fmt.Errorf("read %s[%d] in %s at offset %d: %w (after %d attempts)", l.topic, l.part, l.dc.name, off, last, retries)
}

var decompressor = kgo.DefaultDecompressor()

func (l *partLog) request(id kadm.TopicID, off int64, size int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	// The partition's limit, not the response's, ends the read: kfake
	// leaves the aborted transactions out of a response cut by its
	// response limit, and read_committed needs them.
	req.MaxBytes = 2 * size
	req.IsolationLevel = 1 // read_committed
	req.SessionEpoch = -1  // a full fetch outside any fetch session
	t := kmsg.NewFetchRequestTopic()
	t.Topic = l.topic
	t.TopicID = id
	p := kmsg.NewFetchRequestTopicPartition()
	p.Partition = l.part
	p.FetchOffset = off
	p.PartitionMaxBytes = size
	p.CurrentLeaderEpoch = -1
	p.LastFetchedEpoch = -1
	p.LogStartOffset = -1
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	return req
}

// partition finds this partition's part of a Fetch response.
func (l *partLog) partition(resp *kmsg.FetchResponse) (*kmsg.FetchResponseTopicPartition, error) {
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("read %s[%d] in %s: %w", l.topic, l.part, l.dc.name, err)
	}
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if p := &resp.Topics[i].Partitions[j]; p.Partition == l.part {
				return p, nil
			}
		}
	}
	return nil, fmt.Errorf("read %s[%d] in %s: the broker answered without the partition", l.topic, l.part, l.dc.name)
}
