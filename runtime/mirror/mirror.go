// Package mirror is the mirror job kind: it copies one topic from one
// datacenter to the same topic in another, partition by partition, exactly
// once and without loops.
//
// The processes of a shard share a job's partitions through the consumer
// group ferry.<shard>.<job> in the source datacenter; nothing is committed
// to that group. Each partition is copied by a worker with its own
// transactional producer on the target (transactional ID
// ferry.<job>.<partition>), and each transaction carries, besides the
// copies, the partition's checkpoint (the next source offset) in
// ferry.checkpoints of the target. Output and progress thus commit or abort
// together. A worker that takes a partition first initialises its producer,
// which fences the previous owner and aborts its open transaction, and only
// then reads the checkpoint back: whatever the previous owner committed is
// counted once, whatever it did not is redone.
package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/checkpoint"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// Group session settings: a process that dies loses its partitions to the
// others of its shard within sessionTimeout.
const (
	sessionTimeout    = 6 * time.Second
	heartbeatInterval = 500 * time.Millisecond
)

type job struct {
	env      *executor.Env
	spec     plan.Job
	origins  map[string]bool // the datacenters a record read here may have been mirrored from
	src, dst []kgo.Opt
	maxBytes int32 // max.message.bytes of the target topic

	mu      sync.Mutex
	workers map[int32]*worker
	fail    func(error)
}

// New builds a mirror job from its plan entry.
func New(env *executor.Env, spec plan.Job) (executor.Job, error) {
	if spec.Mirror == nil {
		return nil, fmt.Errorf("%s: not a mirror job", spec.ID)
	}
	src, err := env.Kafka(spec.Mirror.From)
	if err != nil {
		return nil, err
	}
	dst, err := env.Kafka(spec.Mirror.To)
	if err != nil {
		return nil, err
	}
	return &job{env: env, spec: spec, origins: origins(env.Plan, spec.Mirror.From), src: src, dst: dst}, nil
}

// Run provisions the topic in both datacenters, joins the job's group and
// copies the partitions it is given until ctx ends.
func (m *job) Run(ctx context.Context) error {
	if _, err := m.provision(ctx, m.spec.Mirror.From, m.src); err != nil {
		return err
	}
	maxBytes, err := m.provision(ctx, m.spec.Mirror.To, m.dst)
	if err != nil {
		return err
	}
	m.maxBytes = maxBytes
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	m.fail = cancel
	m.workers = map[int32]*worker{}

	c := m.spec.Client
	opts := append(append(append([]kgo.Opt(nil), m.src...),
		kafkaconn.GroupConsumer(executor.Group(m.spec.Shard, m.spec.ID), m.spec.Mirror.Topic)...),
		kgo.SessionTimeout(sessionTimeout),
		kgo.HeartbeatInterval(heartbeatInterval),
		kgo.FetchMaxWait(max(c.FetchMaxWait.D(), 10*time.Millisecond)),
		kgo.FetchMinBytes(c.FetchMinBytes),
		kgo.AdjustFetchOffsetsFn(m.assigned),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) { m.release(lost, true) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) { m.release(lost, false) }),
	)
	if m.env.Instance != "" {
		opts = append(opts, kgo.InstanceID(m.env.Instance+"/"+m.spec.ID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	m.env.Metrics.SetState(metrics.StateRunning, nil)
	err = m.poll(runCtx, cl)
	m.stopAll(ctx.Err() == nil || errors.Is(err, context.Canceled))
	cl.Close()
	if cause := context.Cause(runCtx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// poll hands fetched records to the partitions' workers.
func (m *job) poll(ctx context.Context, cl *kgo.Client) error {
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if fetches.IsClientClosed() {
			return errors.New("consumer closed")
		}
		fetches.EachError(func(topic string, part int32, err error) {
			m.env.Logger.Warn("fetch failed; retrying", "topic", topic, "partition", part, "error", err)
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			m.mu.Lock()
			w := m.workers[p.Partition]
			m.mu.Unlock()
			if w != nil {
				w.deliver(ctx, batch{records: p.Records, lso: p.LastStableOffset})
			}
		})
	}
}

// assigned starts a worker for each partition the group gave this process:
// it fences the partition's previous owner, then reads the partition's
// checkpoint back and starts consuming there.
func (m *job) assigned(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	parts := offsets[m.spec.Mirror.Topic]
	if len(parts) == 0 {
		return offsets, nil
	}
	fresh := map[int32]*worker{}
	for p := range parts {
		prod, err := m.producer(p)
		if err == nil {
			_, _, err = prod.ProducerID(ctx)
		}
		if err != nil {
			if prod != nil {
				prod.Close()
			}
			for _, w := range fresh {
				w.prod.Close()
			}
			return nil, fmt.Errorf("partition %d: init transactional producer: %w", p, err)
		}
		fresh[p] = newWorker(m, p, prod)
	}
	saved, err := checkpoint.Load(ctx, m.dst, m.spec.ID)
	if err != nil {
		for _, w := range fresh {
			w.prod.Close()
		}
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for p, w := range fresh {
		parts[p] = kgo.NewOffset().AtStart()
		if b, ok := saved[w.name]; ok {
			var pos position
			if err := json.Unmarshal(b, &pos); err != nil {
				return nil, fmt.Errorf("partition %d: corrupt checkpoint %q: %w", p, b, err)
			}
			w.next, w.saved = pos.Next, pos.Next
			parts[p] = kgo.NewOffset().At(pos.Next)
		}
		if old := m.workers[p]; old != nil {
			old.stop(false)
		}
		m.workers[p] = w
		go w.run()
	}
	m.env.Metrics.SetAssigned(m.owned())
	m.env.Logger.Info("partitions assigned", "partitions", m.owned())
	return offsets, nil
}

// producer makes the transactional producer of one partition.
func (m *job) producer(p int32) (*kgo.Client, error) {
	c := m.spec.Client
	batchMax := min(c.BatchMaxBytes, m.maxBytes)
	return kgo.NewClient(append(append([]kgo.Opt(nil), m.dst...),
		kgo.TransactionalID(fmt.Sprintf("ferry.%s.%d", m.spec.ID, p)),
		kgo.TransactionTimeout(max(10*time.Second, 3*c.CommitInterval.D())),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// Recover from a leader change in well under a Tier 1 budget.
		kgo.MetadataMinAge(250*time.Millisecond),
		kgo.ProducerLinger(c.Linger.D()),
		kgo.ProducerBatchCompression(compression(c.Compression)),
		kgo.ProducerBatchMaxBytesFn(func(topic string) int32 {
			if topic == systopics.DLQ {
				return systopics.DLQMaxMessageBytes // dead letters may be records too large for their topic
			}
			return batchMax
		}),
	)...)
}

// release stops the workers of partitions taken from this process.
func (m *job) release(lost map[string][]int32, commit bool) {
	m.mu.Lock()
	var ws []*worker
	for _, p := range lost[m.spec.Mirror.Topic] {
		if w := m.workers[p]; w != nil {
			ws = append(ws, w)
			delete(m.workers, p)
			m.env.Metrics.DropPart(w.name)
		}
	}
	m.env.Metrics.SetAssigned(m.owned())
	m.mu.Unlock()
	for _, w := range ws {
		w.stop(commit)
	}
}

func (m *job) stopAll(commit bool) {
	m.mu.Lock()
	ws := m.workers
	m.workers = map[int32]*worker{}
	m.mu.Unlock()
	for _, w := range ws {
		w.stop(commit)
	}
}

// owned lists the partitions this process copies; call with m.mu held.
func (m *job) owned() []int32 {
	parts := make([]int32, 0, len(m.workers))
	for p := range m.workers {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(a, b int) bool { return parts[a] < parts[b] })
	return parts
}

func compression(name string) kgo.CompressionCodec {
	switch name {
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "gzip":
		return kgo.GzipCompression()
	}
	return kgo.NoCompression()
}
