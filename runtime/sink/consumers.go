package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
)

// maxQueued is how many bytes of a table's fetched events may wait for its
// job before its topic's fetching pauses: a sink held up by its target
// does not hold up the others' fetching.
const maxQueued = 4 << 20

// consumers are the Kafka consumers an executor's sink jobs share: one per
// datacenter, shard and tier, a member of the group
// ferry.<shard>.sinks.<datacenter>.t<tier>, consuming the topics of every
// table of that tier that the process runs. A process so holds a handful
// of clients, and of connections per broker, however many tables it
// applies; a consumer (and its group) per table would hold hundreds.
// Tiers keep their own, so that a Tier 1 table's fetches never wait for a
// Tier 4 fetch's min bytes.
//
// Nothing is committed to the group: a table's offsets live in its
// target, next to its rows (see Run), so sharing the group changes how
// partitions are spread over a shard's processes, not what fences them.
type consumers struct {
	logger *slog.Logger
	mu     sync.Mutex
	shared map[consumerKey]*consumer
}

type consumerKey struct {
	dc, shard string
	tier      int
	wait      time.Duration // fetch max wait
	minBytes  int32
	instance  string
	defn      string // the datacenter's definition: a changed one gets a new consumer
}

// consumer is one shared client and the jobs it feeds, by topic.
type consumer struct {
	key  consumerKey
	log  *slog.Logger
	cl   *kgo.Client
	refs int // consumers.mu
	done chan struct{}

	mu    sync.Mutex
	feeds map[string]*feed
}

// feed is one sink job's side of a shared consumer: its topic's records as
// they are fetched, and what the job does when the group gives it
// partitions or takes them away.
type feed struct {
	c        *consumer
	topic    string
	log      *slog.Logger
	assigned func(ctx context.Context, parts map[int32]kgo.Offset) error
	released func(parts []int32)

	mu     sync.Mutex
	queue  []kgo.FetchTopicPartition
	bytes  int64
	paused bool
	left   bool            // the job let its table go
	next   map[int32]int64 // the next offset to hand over, by partition
	err    error           // the job's offsets could not be read: it starts again
	wake   chan struct{}
}

// keyOf is the consumer a job shares. The datacenter's definition is in
// it as JSON, as mirror lanes key theirs: its content, not the addresses
// of its TLS and SASL blocks, which every decoded plan holds anew.
func keyOf(env *executor.Env, spec plan.Job) consumerKey {
	c := spec.Client
	defn, _ := json.Marshal(env.Plan.Datacenters[spec.Sink.Datacenter])
	return consumerKey{
		dc: spec.Sink.Datacenter, shard: spec.Shard, tier: spec.Tier,
		wait: max(c.FetchMaxWait.D(), 10*time.Millisecond), minBytes: c.FetchMinBytes,
		instance: env.Instance, defn: string(defn),
	}
}

func consumerGroup(k consumerKey) string {
	return executor.Group(k.shard, fmt.Sprintf("sinks.%s.t%d", k.dc, k.tier))
}

// join has the job's table consumed by the shared consumer of its
// datacenter, shard and tier, making it if needed, and returns the feed of
// its records and the function that lets the table go (the last table to
// go closes the consumer, leaving the group).
func (cs *consumers) join(env *executor.Env, spec plan.Job, f *feed) (func(), error) {
	key := keyOf(env, spec)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	con := cs.shared[key]
	if con == nil {
		opts, err := kafkaconn.Options(env.Plan.Datacenters[key.dc])
		if err != nil {
			return nil, fmt.Errorf("datacenter %s: %w", key.dc, err)
		}
		if con, err = newConsumer(key, opts, cs.logger); err != nil {
			return nil, err
		}
		cs.shared[key] = con
	}
	con.refs++
	f.c, f.next, f.wake = con, map[int32]int64{}, make(chan struct{}, 1)
	con.mu.Lock()
	con.feeds[f.topic] = f
	con.mu.Unlock()
	con.cl.AddConsumeTopics(f.topic)
	var once sync.Once
	return func() {
		once.Do(func() {
			con.mu.Lock()
			delete(con.feeds, f.topic)
			con.mu.Unlock()
			f.leave()
			cs.mu.Lock()
			defer cs.mu.Unlock()
			if con.refs--; con.refs == 0 {
				delete(cs.shared, key)
				con.close()
				return
			}
			con.cl.PurgeTopicsFromConsuming(f.topic)
		})
	}, nil
}

func newConsumer(key consumerKey, opts []kgo.Opt, logger *slog.Logger) (*consumer, error) {
	name := consumerGroup(key)
	c := &consumer{key: key, log: logger.With("group", name), feeds: map[string]*feed{}, done: make(chan struct{})}
	opts = append(opts, kgo.WithLogger(kafkaconn.Logger(c.log)))
	opts = append(opts, kafkaconn.GroupConsumer(name)...)
	opts = append(opts,
		kgo.SessionTimeout(sessionTimeout),
		kgo.HeartbeatInterval(heartbeatInterval),
		kgo.FetchMaxWait(key.wait),
		kgo.FetchMinBytes(key.minBytes),
		kgo.AdjustFetchOffsetsFn(c.assigned),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { c.released(m) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { c.released(m) }),
	)
	if key.instance != "" {
		opts = append(opts, kgo.InstanceID(key.instance+"/"+name))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	c.cl = cl
	go c.poll()
	return c, nil
}

func (c *consumer) feed(topic string) *feed {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.feeds[topic]
}

// assigned has each table whose partitions the group gave this process
// start them at the offsets stored in its target. A table whose offsets
// cannot be read fails (its job starts again, and with it the reading);
// the others go on. When the group rebalances meanwhile (a table joined,
// say), ctx ends: kgo asks again in the next session, so that is no
// table's failure.
func (c *consumer) assigned(ctx context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for topic, parts := range offs {
		f := c.feed(topic)
		if f == nil {
			continue // its job left: the topic is on its way out
		}
		err := f.assigned(ctx, parts)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			f.fail(err)
		}
	}
	return offs, nil
}

// released tells each table which of its partitions went elsewhere.
func (c *consumer) released(m map[string][]int32) {
	for topic, parts := range m {
		if f := c.feed(topic); f != nil {
			f.drop(parts)
			f.released(parts)
		}
	}
}

// poll hands fetched records to the feeds of their topics until the
// client closes.
func (c *consumer) poll() {
	defer close(c.done)
	for {
		fetches := c.cl.PollFetches(context.Background())
		if fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if f := c.feed(topic); f != nil && !errors.Is(err, context.Canceled) {
				f.log.Warn("fetch failed; retrying", "topic", topic, "partition", p, "error", err)
			}
		})
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if f := c.feed(fp.Topic); f != nil && len(fp.Records) > 0 {
				f.push(fp)
			}
		})
	}
}

func (c *consumer) close() {
	c.cl.Close()
	<-c.done
}

// push queues a partition's records for the job, past those handed over
// already (a paused topic's records may be fetched again), and pauses the
// topic's fetching past maxQueued bytes.
func (f *feed) push(fp kgo.FetchTopicPartition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.left {
		return
	}
	recs := fp.Records
	if next, ok := f.next[fp.Partition]; ok {
		for len(recs) > 0 && recs[0].Offset < next {
			recs = recs[1:]
		}
	}
	if len(recs) == 0 {
		return
	}
	f.next[fp.Partition] = recs[len(recs)-1].Offset + 1
	fp.Records = recs
	f.queue = append(f.queue, fp)
	for _, r := range recs {
		f.bytes += int64(len(r.Key) + len(r.Value))
	}
	if f.bytes > maxQueued && !f.paused {
		f.paused = true
		f.c.cl.PauseFetchTopics(f.topic)
	}
	f.signal()
}

// leave stops the feed, resuming its topic if it was paused: kgo keeps a
// paused topic paused, and the job's next start consumes it again.
func (f *feed) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left = true
	if f.paused {
		f.paused = false
		f.c.cl.ResumeFetchTopics(f.topic)
	}
}

func (f *feed) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// drop forgets the queued records of partitions the group took away.
func (f *feed) drop(parts []int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	gone := map[int32]bool{}
	for _, p := range parts {
		gone[p] = true
		delete(f.next, p)
	}
	kept := f.queue[:0]
	for _, fp := range f.queue {
		if !gone[fp.Partition] {
			kept = append(kept, fp)
		}
	}
	clear(f.queue[len(kept):])
	f.queue = kept
}

func (f *feed) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
	f.signal()
}

// poll waits until records are queued (or ctx ends: none) and takes up to
// most of them, a partition's records in order.
func (f *feed) poll(ctx context.Context, most int) ([]kgo.FetchTopicPartition, error) {
	for {
		f.mu.Lock()
		if f.err != nil {
			err := f.err
			f.mu.Unlock()
			return nil, err
		}
		if len(f.queue) > 0 {
			out := f.take(most)
			f.mu.Unlock()
			return out, nil
		}
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, nil
		case <-f.wake:
		}
	}
}

// take removes up to most records from the queue (f.mu held) and resumes
// the topic's fetching once half the bound is free.
func (f *feed) take(most int) []kgo.FetchTopicPartition {
	var out []kgo.FetchTopicPartition
	for most > 0 && len(f.queue) > 0 {
		fp := f.queue[0]
		if len(fp.Records) > most {
			rest := fp
			rest.Records = fp.Records[most:]
			fp.Records = fp.Records[:most]
			f.queue[0] = rest
		} else {
			f.queue = f.queue[1:]
		}
		most -= len(fp.Records)
		for _, r := range fp.Records {
			f.bytes -= int64(len(r.Key) + len(r.Value))
		}
		out = append(out, fp)
	}
	if f.paused && f.bytes < maxQueued/2 {
		f.paused = false
		f.c.cl.ResumeFetchTopics(f.topic)
	}
	return out
}
