package mirror

import (
	"cmp"
	"context"
	"encoding/binary"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// idleFetchWait is how long a lane's fetch waits for data. Any byte is
// enough to answer it (fetch min bytes 1): the broker answers as soon as a
// record arrives, so the long wait costs no latency and an idle lane asks
// once a second, however many partitions it has. Tiers that batch (a fetch
// min bytes above 1) pace their fetches instead (see fetcher.loop).
const idleFetchWait = time.Second

// maxQueued is how many bytes of fetched records a partition may have
// waiting for its slot before its fetching pauses: a slot that is held up
// does not hold up the lane's fetching for the others.
const maxQueued = 4 << 20

// Fetch sizes, kgo's defaults: a partition's share of a fetch, and a
// fetch's.
const (
	fetchPartitionBytes = 1 << 20
	fetchBytes          = 50 << 20
)

// fetcher reads the partitions one slot of the lane took, in the source
// datacenter, and hands each partition's records to the slot: one fetch
// loop per broker that leads some of them (so one fetch at a time per
// slot and broker, see lane.fetcher), read_committed.
//
// It fetches itself rather than through kgo's consumer for one reason: a
// mirror reads back every copy it wrote, in the other direction, only to
// skip it, and kgo decodes every batch it fetches. A batch written by one
// of this process's slot producers in the source datacenter (a
// transactional batch whose producer ID is among copiers: those producers
// write nothing but copies to mirrored topics) is skipped undecoded, its
// offsets handed over as read. Decoding them was a third of a busy
// mirror's CPU. Copies written by other processes are decoded and skipped
// by their headers as before.
type fetcher struct {
	l       *lane
	cl      *kgo.Client // connections and metadata; it consumes nothing
	adm     *kadm.Client
	dec     kgo.Decompressor
	copiers *copiers // the producers whose batches are skipped
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	parts   map[topicPart]*fetching
	ids     map[kadm.TopicID]string // topic names by ID, from metadata
	loops   map[int32]chan struct{} // a broker's loop, woken when its partitions change
	refresh chan struct{}           // the partitions without a leader want metadata
}

type topicPart struct {
	topic     string
	partition int32
}

// fetching is a partition being fetched: the fetcher's view of it.
type fetching struct {
	p         *part
	offset    int64 // next to fetch
	received  int64 // next to hand over
	handed    bool  // records were handed over
	leader    int32 // -1: unknown, waiting for metadata
	topicID   kadm.TopicID
	notBefore time.Time     // failed: not asked for until then
	pause     time.Duration // how long the last failure kept it out
}

// newFetcher starts a slot's fetcher.
func newFetcher(ctx context.Context, l *lane) (*fetcher, error) {
	cl, err := kgo.NewClient(l.src...)
	if err != nil {
		return nil, err
	}
	f := &fetcher{
		l: l, cl: cl, adm: kadm.NewClient(cl), dec: kgo.DefaultDecompressor(fetched), copiers: l.skips,
		parts: map[topicPart]*fetching{}, ids: map[kadm.TopicID]string{}, loops: map[int32]chan struct{}{},
		refresh: make(chan struct{}, 1),
	}
	f.ctx, f.cancel = context.WithCancel(ctx)
	f.wg.Add(1)
	go f.leaders()
	return f, nil
}

// add starts fetching partitions a slot took, each from its position.
func (f *fetcher) add(parts []*part) {
	if len(parts) == 0 {
		return
	}
	f.mu.Lock()
	for _, p := range parts {
		// p.next is 0 when copying from the start: out of range moves it
		// to the log's start.
		f.parts[p.at()] = &fetching{p: p, offset: p.next, received: p.next, leader: -1}
	}
	f.mu.Unlock()
	f.wantLeaders()
}

// remove stops fetching a partition a slot let go.
func (f *fetcher) remove(p *part) {
	f.mu.Lock()
	if fp := f.parts[p.at()]; fp != nil && fp.p == p {
		delete(f.parts, p.at())
	}
	f.mu.Unlock()
}

// forget drops what the fetcher knows of a topic whose job left the lane
// (see lane.remove).
func (f *fetcher) forget(topic string) {
	f.mu.Lock()
	for tp := range f.parts {
		if tp.topic == topic {
			delete(f.parts, tp)
		}
	}
	for id, name := range f.ids {
		if name == topic {
			delete(f.ids, id)
		}
	}
	f.mu.Unlock()
}

// processed accounts for a partition's records its slot is done with, and
// fetches it again if that was paused.
func (f *fetcher) processed(p *part, bytes int64) {
	if p.queued.Add(-bytes) < maxQueued/2 && p.paused.CompareAndSwap(true, false) {
		f.mu.Lock()
		if fp := f.parts[p.at()]; fp != nil && fp.p == p {
			f.wake(fp.leader)
		}
		f.mu.Unlock()
	}
}

func (f *fetcher) close() {
	f.cancel()
	f.wg.Wait()
	f.cl.Close()
}

// wantLeaders has the leaders goroutine look up the partitions without one.
func (f *fetcher) wantLeaders() {
	select {
	case f.refresh <- struct{}{}:
	default:
	}
}

// wake wakes broker id's loop (with f.mu held).
func (f *fetcher) wake(id int32) {
	if w := f.loops[id]; w != nil {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// leaders looks up the leaders of the partitions that have none (added, or
// whose fetch said the leader moved) and starts a loop for each broker
// that leads some. A topic not in the metadata (not there yet, or gone) is
// looked up again a second later; its job learns of a deletion from its
// fetches.
func (f *fetcher) leaders() {
	defer f.wg.Done()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-f.refresh:
		case <-retry.C:
		}
		var topics []string
		f.mu.Lock()
		seen := map[string]bool{}
		for tp, fp := range f.parts {
			if fp.leader < 0 && !seen[tp.topic] {
				seen[tp.topic] = true
				topics = append(topics, tp.topic)
			}
		}
		f.mu.Unlock()
		if len(topics) == 0 {
			continue
		}
		md, err := f.adm.Metadata(f.ctx, topics...)
		if f.ctx.Err() != nil {
			return
		}
		missing := err != nil
		f.mu.Lock()
		for tp, fp := range f.parts {
			if fp.leader >= 0 || err != nil {
				continue
			}
			t, ok := md.Topics[tp.topic]
			pd, pok := t.Partitions[tp.partition]
			if !ok || t.Err != nil || !pok || pd.Err != nil || pd.Leader < 0 {
				missing = true
				continue
			}
			fp.leader, fp.topicID = pd.Leader, t.ID
			f.ids[t.ID] = tp.topic
			if f.loops[pd.Leader] == nil {
				w := make(chan struct{}, 1)
				f.loops[pd.Leader] = w
				f.wg.Add(1)
				go f.loop(pd.Leader, w)
			}
			f.wake(pd.Leader)
		}
		f.mu.Unlock()
		if missing {
			retry.Reset(time.Second)
		}
	}
}

// asked is a partition as a fetch asked for it.
type asked struct {
	fp     *fetching
	offset int64
}

// request is the fetch of broker id's partitions that are not paused, and
// what it asks for. The order of its topics, and of each topic's
// partitions, turns by one at each of the loop's fetches (turn): a fetch's
// size is bounded, and a broker fills it in the order asked, so none waits
// behind the others for long (kgo's consumer turns its order too).
func (f *fetcher) request(id int32, turn int) (_ *kmsg.FetchRequest, _ map[topicPart]asked, later time.Time) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = int32(idleFetchWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = fetchBytes
	req.IsolationLevel = 1 // read_committed
	req.SessionEpoch = -1  // no session: every fetch names its partitions
	f.mu.Lock()
	defer f.mu.Unlock()
	asks := map[topicPart]asked{}
	byTopic := map[string][]*fetching{}
	now := time.Now()
	for tp, fp := range f.parts {
		switch {
		case fp.leader != id || fp.p.paused.Load():
		case fp.notBefore.After(now):
			if later.IsZero() || fp.notBefore.Before(later) {
				later = fp.notBefore
			}
		default:
			asks[tp] = asked{fp, fp.offset}
			byTopic[tp.topic] = append(byTopic[tp.topic], fp)
		}
	}
	for _, topic := range turned(slices.Sorted(maps.Keys(byTopic)), turn) {
		fps := byTopic[topic]
		slices.SortFunc(fps, func(a, b *fetching) int { return cmp.Compare(a.p.partition, b.p.partition) })
		t := kmsg.NewFetchRequestTopic()
		t.Topic, t.TopicID = topic, fps[0].topicID
		for _, fp := range turned(fps, turn) {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = fp.p.partition, fp.offset, fetchPartitionBytes
			rp.CurrentLeaderEpoch, rp.LastFetchedEpoch, rp.LogStartOffset = -1, -1, -1
			t.Partitions = append(t.Partitions, rp)
		}
		req.Topics = append(req.Topics, t)
	}
	return req, asks, later
}

// turned is s turned left by n.
func turned[T any](s []T, n int) []T {
	if len(s) < 2 {
		return s
	}
	n %= len(s)
	return append(s[n:], s[:n]...)
}

// loop fetches broker id's partitions until the fetcher closes. A tier
// that batches (fetch min bytes above 1) takes a fetch smaller than its
// min bytes at most once per fetch max wait, or a twentieth of its budget
// up to a second: records gather meanwhile, and a lane's fetches carry
// many records each rather than a few (each costs the broker a look at
// every partition it names), while a backlog is read as fast as it goes.
func (f *fetcher) loop(id int32, wake chan struct{}) {
	defer f.wg.Done()
	var pace time.Duration
	if c := f.l.key.client; c.FetchMinBytes > 1 {
		pace = max(c.FetchMaxWait.D(), min(f.l.key.budget.D()/20, time.Second))
	}
	backoff := 100 * time.Millisecond
	turn := rand.N(1 << 20) // processes and loops start at different turns
	for last := time.Now(); ; last = time.Now() {
		turn++
		req, asks, later := f.request(id, turn)
		if len(asks) == 0 {
			var again <-chan time.Time // a partition's pause after failing ends
			if !later.IsZero() {
				again = time.After(time.Until(later))
			}
			select {
			case <-f.ctx.Done():
				return
			case <-wake:
			case <-again:
			}
			continue
		}
		resp, err := req.RequestWith(f.ctx, f.cl.Broker(int(id)))
		if f.ctx.Err() != nil {
			return
		}
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		if err != nil {
			// The broker is unreachable or gone: its partitions' leaders
			// are looked up again, after a pause.
			f.moved(asks)
			if !sleep(f.ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		bytes := f.handle(resp, asks)
		if throttled := time.Duration(resp.ThrottleMillis) * time.Millisecond; throttled > 0 && !sleep(f.ctx, throttled) {
			return // a quota: the broker asks its clients to wait that long
		}
		if wait := jitter(pace) - time.Since(last); wait > 0 && bytes < int64(f.l.key.client.FetchMinBytes) && !sleep(f.ctx, wait) {
			return
		}
	}
}

// moved forgets the leaders of partitions a broker no longer answers for.
func (f *fetcher) moved(asks map[topicPart]asked) {
	f.mu.Lock()
	for _, a := range asks {
		a.fp.leader = -1
	}
	f.mu.Unlock()
	f.wantLeaders()
}

// handle hands each partition's records of a fetch to its slot and returns
// their bytes. A partition whose position moved since the fetch was asked
// (let go, taken again) is left for the next fetch; one whose fetch
// failed is not asked for again for a while (see failing).
func (f *fetcher) handle(resp *kmsg.FetchResponse, asks map[topicPart]asked) (bytes int64) {
	var lost map[topicPart]asked
	var out []batch
	for i := range resp.Topics {
		t := &resp.Topics[i]
		topic := t.Topic
		if topic == "" {
			f.mu.Lock()
			topic = f.ids[t.TopicID]
			f.mu.Unlock()
		}
		for j := range t.Partitions {
			rp := &t.Partitions[j]
			tp := topicPart{topic, rp.Partition}
			a, ok := asks[tp]
			if !ok {
				continue
			}
			f.mu.Lock()
			current := f.parts[tp] == a.fp && a.fp.offset == a.offset
			f.mu.Unlock()
			if !current {
				continue
			}
			switch err := kerr.ErrorForCode(rp.ErrorCode); {
			case err == nil:
				if b, ok := f.take(tp, a, rp); ok {
					out = append(out, b)
					bytes += b.bytes
				}
			case err == kerr.OffsetOutOfRange:
				f.reset(tp, a)
			case err == kerr.UnknownTopicOrPartition || err == kerr.UnknownTopicID:
				f.l.fetchFailed(topic, rp.Partition, err)
				fallthrough
			case kerr.IsRetriable(err):
				if lost == nil {
					lost = map[topicPart]asked{}
				}
				lost[tp] = a
			default:
				f.l.fetchFailed(topic, rp.Partition, err)
				f.failing(a.fp)
			}
		}
	}
	if lost != nil {
		f.moved(lost)
	}
	handOver(out)
	return bytes
}

// failing keeps a partition whose fetch failed (refused, say, or a batch
// that does not decode) out of its loop's fetches for a while: 100 ms,
// doubling to 5 s until it is fetched again. Asked again at once, it would
// have its loop fetch as fast as the broker answers.
func (f *fetcher) failing(fp *fetching) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fp.pause = min(max(2*fp.pause, 100*time.Millisecond), 5*time.Second)
	fp.notBefore = time.Now().Add(fp.pause)
}

// handOver hands a fetch's records to their slots (a slot's, and its
// companion's), each its share at once, once the fetch is all decoded: so
// that the records go out in one transaction, rather than in one per
// partition as they are decoded.
func handOver(out []batch) {
	for len(out) > 0 {
		s := out[0].p.slot
		var mine, rest []batch
		for _, b := range out {
			if b.p.slot == s {
				mine = append(mine, b)
			} else {
				rest = append(rest, b)
			}
		}
		s.deliver(mine...)
		out = rest
	}
}

// reset moves a partition whose position is out of its log's range to the
// log's start, as kgo's consumer does (ConsumeResetOffset at the start): a
// topic made again (or emptied) since its checkpoint is copied from its
// start (see route).
func (f *fetcher) reset(tp topicPart, a asked) {
	starts, err := f.adm.ListStartOffsets(f.ctx, tp.topic)
	if err != nil {
		f.l.fetchFailed(tp.topic, tp.partition, err)
		f.failing(a.fp)
		return
	}
	o, ok := starts.Lookup(tp.topic, tp.partition)
	if !ok || o.Err != nil {
		f.failing(a.fp) // looked up again at a later fetch
		return
	}
	f.mu.Lock()
	if f.parts[tp] == a.fp && a.fp.offset == a.offset {
		a.fp.offset = o.Offset
	}
	f.mu.Unlock()
}

// take decodes a partition's fetched batches but those of copiers, moves
// the partition's position past them, and returns what is new of them for
// its slot: the records and the offsets skipped.
func (f *fetcher) take(tp topicPart, a asked, rp *kmsg.FetchResponseTopicPartition) (batch, bool) {
	skipped, skippedTo, first := f.skip(rp, a.offset)
	fetched, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		KeepControlRecords: true,
		Offset:             a.offset,
		IsolationLevel:     kgo.ReadCommitted(),
		Topic:              tp.topic,
		Partition:          tp.partition,
		Pools:              []kgo.Pool{fetched},
	}, rp, f.dec, nil)
	next = max(next, skippedTo)
	if fetched.Err != nil {
		f.l.fetchFailed(tp.topic, tp.partition, fetched.Err)
		if next <= a.offset {
			f.failing(a.fp)
		}
	}
	if next <= a.offset {
		return batch{}, false
	}
	if len(fetched.Records) > 0 && (first < 0 || fetched.Records[0].Offset < first) {
		first = fetched.Records[0].Offset
	}
	if first < 0 {
		first = a.offset // nothing but records kgo dropped (aborted)
	}
	f.mu.Lock() // a partition moving between brokers may be answered by both loops
	defer f.mu.Unlock()
	if f.parts[tp] != a.fp || a.fp.offset != a.offset {
		return batch{}, false
	}
	a.fp.offset, a.fp.pause = next, 0
	return f.route(a.fp, batch{records: fetched.Records, lso: rp.LastStableOffset, first: first, next: next, skipped: skipped})
}

// skip takes out of rp's batches those written by copiers and returns how
// many records they held, the offset after the last of them (0 if none),
// and the first offset at or after from that they cover (-1 if none).
// What is left is rp's batches in order, less those.
func (f *fetcher) skip(rp *kmsg.FetchResponseTopicPartition, from int64) (skipped, to, first int64) {
	first = -1
	ids := f.copiers.load()
	if len(ids) == 0 {
		return 0, 0, -1
	}
	in, kept := rp.RecordBatches, rp.RecordBatches[:0:0]
	copied := false // kept is a copy of what is kept, not a prefix of in
	at := 0
	for len(in)-at >= 61 {
		length := int(int32(binary.BigEndian.Uint32(in[at+8:])))
		end := at + 12 + length
		if length < 49 || end > len(in) || in[at+16] != 2 {
			break // truncated (by the fetch's size) or not a v2 batch: left to kgo
		}
		attrs := binary.BigEndian.Uint16(in[at+21:])
		pid := int64(binary.BigEndian.Uint64(in[at+43:]))
		base := int64(binary.BigEndian.Uint64(in[at:]))
		last := base + int64(int32(binary.BigEndian.Uint32(in[at+23:])))
		if attrs&0x10 == 0 || !ids[pid] || last < from {
			if copied {
				kept = append(kept, in[at:end]...)
			}
			at = end
			continue
		}
		if !copied {
			kept, copied = append(kept, in[:at]...), true
		}
		if attrs&0x20 == 0 {
			skipped += int64(int32(binary.BigEndian.Uint32(in[at+57:])))
		}
		if first < 0 {
			first = max(base, from)
		}
		to = last + 1
		at = end
	}
	if copied {
		rp.RecordBatches = append(kept, in[at:]...)
	}
	return skipped, to, first
}

// route is what of a partition's fetched records its slot is to be handed:
// those past what it was handed already. Past maxQueued bytes waiting for
// the slot, the partition's fetching pauses. With f.mu held.
func (f *fetcher) route(fp *fetching, b batch) (batch, bool) {
	b.p = fp.p
	b.reset = !fp.handed && b.first < fp.received
	if b.reset {
		// The first fetch is before the checkpoint: the partition was
		// made again (or emptied) since. Its records now are new ones.
		fp.received = b.first
	}
	fp.handed = true
	for len(b.records) > 0 && b.records[0].Offset < fp.received {
		b.records = b.records[1:]
	}
	if b.next <= fp.received {
		return batch{}, false
	}
	fp.received = b.next
	for _, r := range b.records {
		b.bytes += int64(len(r.Key) + len(r.Value))
	}
	if fp.p.queued.Add(b.bytes) > maxQueued {
		fp.p.paused.Store(true)
	}
	b.fetched = time.Now()
	return b, true
}

// sleep waits d unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
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
