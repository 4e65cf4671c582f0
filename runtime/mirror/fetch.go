package mirror

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// idleFetchWait is how long a lane's fetch waits for data. Any byte is
// enough to answer it (fetch min bytes 1): the broker answers as soon as a
// record arrives, so the long wait costs no latency and an idle lane asks
// once a second, however many partitions it has. Tiers that batch (a fetch
// min bytes above 1) pace their polls instead (see fetcher.poll).
const idleFetchWait = time.Second

// maxQueued is how many bytes of fetched records a partition may have
// waiting for its slot before its fetching pauses: a slot that is held up
// does not hold up the lane's fetching for the others.
const maxQueued = 4 << 20

// fetcher reads the partitions one slot of the lane took, in the source
// datacenter: one consumer, so one fetch session, per slot (see
// lane.fetcher), and hands each partition's records to the slot.
type fetcher struct {
	l  *lane
	cl *kgo.Client

	mu     sync.Mutex
	routes map[topicPart]*part
	topics map[string]bool // ever added, until forgotten
	done   chan struct{}
}

type topicPart struct {
	topic     string
	partition int32
}

// newFetcher starts a slot's consumer. It keeps the retriable fetch errors
// that kgo would retry silently: a source topic deleted answers
// UNKNOWN_TOPIC_OR_PARTITION, and its job fails at once (lane.fetchFailed),
// which purges the topic from the consumer. Until then kgo kept fetching
// the session, which holds the topic, and kfake answered each fetch at once
// for the missing topic: at 1,000 topics, until the topic was made again
// (0.6 s), the brokers were busy enough to put 0.5% of the other Tier 1
// records over 25 ms (0.05% with the errors kept).
func newFetcher(ctx context.Context, l *lane) (*fetcher, error) {
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), l.src...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.KeepRetryableFetchErrors(),
		kgo.FetchMaxWait(idleFetchWait),
		kgo.WithPools(fetched),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		return nil, err
	}
	f := &fetcher{l: l, cl: cl, routes: map[topicPart]*part{}, topics: map[string]bool{}, done: make(chan struct{})}
	go f.poll(ctx)
	return f, nil
}

// add starts fetching partitions a slot took, each from its position.
func (f *fetcher) add(parts []*part) {
	offsets := map[string]map[int32]kgo.Offset{}
	f.mu.Lock()
	for _, p := range parts {
		f.routes[p.at()] = p
		f.topics[p.topic] = true
		p.received = p.next
		o := kgo.NewOffset().At(p.next)
		if p.fromStart {
			o = kgo.NewOffset().AtStart()
		}
		if offsets[p.topic] == nil {
			offsets[p.topic] = map[int32]kgo.Offset{}
		}
		offsets[p.topic][p.partition] = o
	}
	f.mu.Unlock()
	if len(offsets) > 0 {
		f.cl.AddConsumePartitions(offsets)
	}
}

// remove stops fetching a partition a slot let go.
func (f *fetcher) remove(p *part) {
	f.mu.Lock()
	tp := p.at()
	if f.routes[tp] == p {
		delete(f.routes, tp)
	}
	f.mu.Unlock()
	f.cl.RemoveConsumePartitions(map[string][]int32{p.topic: {p.partition}})
}

// forget has the consumer forget a topic whose job left the lane (see
// lane.remove), if it ever fetched it: a purge restarts the consumer's
// fetch sessions, which the slot's other partitions would wait through.
func (f *fetcher) forget(topic string) {
	f.mu.Lock()
	known := f.topics[topic]
	delete(f.topics, topic)
	f.mu.Unlock()
	if known {
		f.cl.PurgeTopicsFromConsuming(topic)
	}
}

// processed accounts for a partition's records its slot is done with, and
// fetches it again if that was paused.
func (f *fetcher) processed(p *part, bytes int64) {
	if p.queued.Add(-bytes) < maxQueued/2 && p.paused.CompareAndSwap(true, false) {
		f.cl.ResumeFetchPartitions(map[string][]int32{p.topic: {p.partition}})
	}
}

func (f *fetcher) close() {
	f.cl.Close()
	<-f.done
}

// poll hands fetched records to the slots of their partitions. A tier that
// batches (fetch min bytes above 1) takes a fetch smaller than its min
// bytes at most once per fetch max wait, or a twentieth of its budget up to
// a second: kgo fetches again only once the last fetch is taken, so
// records gather meanwhile, and a lane's fetches carry many records each
// rather than a few (each costs the broker a look at every partition of
// the session), while a backlog is read as fast as it goes.
func (f *fetcher) poll(ctx context.Context) {
	defer close(f.done)
	var pace time.Duration
	if c := f.l.key.client; c.FetchMinBytes > 1 {
		pace = max(c.FetchMaxWait.D(), min(f.l.key.budget.D()/20, time.Second))
	}
	for last := time.Now(); ; last = time.Now() {
		fetches := f.cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(f.l.fetchFailed)
		var bytes int64
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) > 0 {
				bytes += f.route(fp)
			}
		})
		if wait := jitter(pace) - time.Since(last); wait > 0 && bytes < int64(f.l.key.client.FetchMinBytes) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

// route hands a partition's records to its slot, past those handed over
// already (a paused partition's fetch may be fetched again), and returns
// their bytes. Past maxQueued bytes waiting for the slot, the partition's
// fetching pauses.
func (f *fetcher) route(fp kgo.FetchTopicPartition) (bytes int64) {
	f.mu.Lock()
	p := f.routes[topicPart{fp.Topic, fp.Partition}]
	f.mu.Unlock()
	if p == nil {
		return 0 // let go: its next owner fetches it from its checkpoint
	}
	recs := fp.Records
	reset := !p.handed && recs[0].Offset < p.received
	if reset {
		// The first fetch is before the checkpoint: the partition was
		// made again (or emptied) since. Its records now are new ones.
		p.received = recs[0].Offset
	}
	p.handed = true
	for len(recs) > 0 && recs[0].Offset < p.received {
		recs = recs[1:]
	}
	if len(recs) == 0 {
		return 0
	}
	p.received = recs[len(recs)-1].Offset + 1
	var n int64
	for _, r := range recs {
		n += int64(len(r.Key) + len(r.Value))
	}
	if p.queued.Add(n) > maxQueued && p.paused.CompareAndSwap(false, true) {
		f.cl.PauseFetchPartitions(map[string][]int32{p.topic: {p.partition}})
	}
	p.slot.deliver(batch{p: p, records: recs, lso: fp.LastStableOffset, bytes: n, reset: reset, fetched: time.Now()})
	return n
}

// jitter is a pace between half and one and a half times d, d on average.
// The slots of a lane start together and, paced alike, would fetch and
// commit in step: every slot's fetch, writes and commit at once hold each
// broker for tens of milliseconds (kfake answers a cluster's requests one
// at a time), and Tier 1 requests wait behind them.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d/2 + rand.N(d)
}
