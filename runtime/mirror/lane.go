package mirror

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// Group session settings of a lane's slot group: a process that dies loses
// its slots to the others of its shard within sessionTimeout.
const (
	sessionTimeout    = 6 * time.Second
	heartbeatInterval = 500 * time.Millisecond
)

// recordTries is how many times a slot's producer tries a partition's
// records. A refused write (a leader gone) is tried again once metadata is
// fresh, and metadata is kept at most a quarter of giveUpAfter old, so a
// partition the target keeps refusing fails after about giveUpAfter and is
// taken out of the slot's transactions (see slot.commit): it holds the
// slot's other partitions up for about that long at most.
const recordTries = 4

// giveUpAfter is a third of the budget: the slot's other partitions still
// meet theirs.
func giveUpAfter(budget time.Duration) time.Duration {
	if budget <= 0 {
		return time.Second
	}
	return max(budget/3, 50*time.Millisecond)
}

// laneKey tells lanes apart: jobs of one shard, direction and tier, with
// the same client settings and datacenter definitions, share one.
type laneKey struct {
	shard, from, to string
	tier            int
	budget          plan.Duration
	client          plan.ClientSettings
	dcs             string // both datacenters' definitions
}

// lane copies the partitions of its jobs that this process is given: a
// slot (with a fetcher in the source datacenter and one transactional
// producer in the target) for each ferry.slots partition the lane's group
// gives this process.
type lane struct {
	key      laneKey
	name     string // the group, and the prefix of the slots' transactional IDs
	log      *slog.Logger
	src, dst []kgo.Opt
	origins  map[string]bool
	skips    *copiers           // source: the producers whose batches are copies (the fetchers')
	writers  *copiers           // target: the slots' producers, once started
	kins     []*kin             // slot n's and its companion's: kins[n]
	fs       []*fetcher         // source: slot n's partitions, fetched by fs[n]
	group    *kgo.Client        // source: member of the lane's slot group
	adm      *kgo.Client        // target: fences
	readers  *kafkaconn.Readers // target: the claims' reads of checkpoints (the fleet's)
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	refs     int // jobs in the lane (fleet.mu)

	mu     sync.Mutex
	jobs   map[string]*laneJob  // by topic
	slots  map[int]*slot        // the slots this process holds
	logged map[string]time.Time // when a topic's fetch failure was last logged
}

// laneJob is a job in its lane.
type laneJob struct {
	env      *executor.Env
	spec     plan.Job
	maxBytes int32 // the target topic's max.message.bytes, 0 if unknown (set once, in lane.add)
	failed   chan error
	taken    map[int32]bool   // partitions this process copies (lane.mu)
	held     map[int32]string // partitions another lane holds, by writer (lane.mu)
	broken   map[int32]error  // partitions that cannot be written, tried again by a companion (lane.mu)
	nbroken  atomic.Int32     // len(broken), read without the lock on every commit
}

// fail ends the job with err (the first of its failures).
func (j *laneJob) fail(err error) {
	select {
	case j.failed <- err:
	default:
	}
}

// laneName is the lane's group and transactional ID prefix. It leaves out
// the client settings, so that a lane started again with new ones fences
// the old.
func laneName(k laneKey) string {
	return fmt.Sprintf("ferry.lane.%s.%s.%s.t%d", k.shard, k.from, k.to, k.tier)
}

// newLane starts a lane (with f.mu held).
func newLane(f *fleet, env *executor.Env, key laneKey) (*lane, error) {
	l := &lane{
		key: key, name: laneName(key), log: f.logger.With("lane", laneName(key)),
		origins: origins(env.Plan, key.from),
		skips:   f.copiersIn(env, key.from),
		writers: f.copiersIn(env, key.to),
		jobs:    map[string]*laneJob{},
		slots:   map[int]*slot{},
		logged:  map[string]time.Time{},
	}
	if l.kins = f.kins[l.name]; l.kins == nil {
		for range systopics.SlotCount {
			l.kins = append(l.kins, newKin())
		}
		f.kins[l.name] = l.kins
	}
	var err error
	if l.src, err = clientOpts(env, key.from, l.log); err != nil {
		return nil, err
	}
	if l.dst, err = clientOpts(env, key.to, l.log); err != nil {
		return nil, err
	}
	if l.readers, err = f.readersOf(env, key.to); err != nil {
		return nil, err
	}
	if l.adm, err = kgo.NewClient(l.dst...); err != nil {
		return nil, err
	}
	// The group's callbacks start slots: everything they use is made
	// before it.
	l.ctx, l.cancel = context.WithCancel(context.Background())
	for range systopics.SlotCount {
		f, err := newFetcher(l.ctx, l)
		if err != nil {
			l.cancel()
			l.closeFetchers()
			l.adm.Close()
			return nil, err
		}
		l.fs = append(l.fs, f)
	}
	gopts := append(append([]kgo.Opt(nil), l.src...),
		kgo.ConsumerGroup(l.name),
		kgo.ConsumeTopics(systopics.Slots),
		kgo.SessionTimeout(sessionTimeout),
		kgo.HeartbeatInterval(heartbeatInterval),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { l.assigned(m[systopics.Slots]) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { l.revoked(m[systopics.Slots], true) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { l.revoked(m[systopics.Slots], false) }),
	)
	if env.Instance != "" {
		h := fnv.New32a()
		h.Write([]byte(fmt.Sprint(key.client, key.dcs)))
		gopts = append(gopts, kgo.InstanceID(fmt.Sprintf("%s/%s/%x", env.Instance, l.name, h.Sum32())))
	}
	if l.group, err = kgo.NewClient(gopts...); err != nil {
		l.cancel()
		l.closeFetchers()
		l.adm.Close()
		return nil, err
	}
	l.group.PauseFetchTopics(systopics.Slots) // it stays empty: membership is all
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for l.ctx.Err() == nil {
			l.group.PollFetches(l.ctx)
		}
	}()
	return l, nil
}

// fetcher is the fetcher of slot n's partitions. A lane fetches per slot:
// a broker answers a fetch by looking at every partition it names, and
// kfake answers nothing else of its cluster meanwhile (a real broker holds
// one of its request threads). One fetch session of a lane's 5,400 Tier 2
// partitions held each of its fetches for up to 10-15 ms, and every Tier 1
// request that arrived then waited as long. Eight fetches of an eighth
// cost the broker as much in all, each an eighth as long.
func (l *lane) fetcher(n int) *fetcher { return l.fs[n] }

func (l *lane) closeFetchers() {
	for _, f := range l.fs {
		f.close()
	}
}

// clientOpts are the options of clients in datacenter dc, logging to log.
func clientOpts(env *executor.Env, dc string, log *slog.Logger) ([]kgo.Opt, error) {
	opts, err := kafkaconn.Options(env.Plan.Datacenters[dc])
	if err != nil {
		return nil, fmt.Errorf("datacenter %s: %w", dc, err)
	}
	return append(opts, kgo.WithLogger(kafkaconn.Logger(log.With("datacenter", dc)))), nil
}

// commitsAtOnce reports whether the lane's slots commit as soon as they
// have copied everything fetched, rather than a commit interval after: a
// tier whose fetches are answered at each record (min bytes 1) is there
// for latency. Records fetched while a commit is on its way wait for it
// and go in the next transaction together, so transactions grow with the
// traffic (group commit) and the interval only bounds them.
func (l *lane) commitsAtOnce() bool { return l.key.client.FetchMinBytes <= 1 }

// wideBatchBytes is a slot producer's batch limit for ferry.dlq and for a
// topic one of whose records is over the usual limit. Kafka judges a batch
// by its size after compression, kgo a record by its size before: a record
// kgo refuses may well fit once compressed, so it is written alone in a
// batch under this limit, and only the broker's refusal dead-letters it.
// It is kgo's default BrokerMaxWriteBytes, which bounds it anyway.
const wideBatchBytes = 100 << 20

// producerOpts are a slot's producer options. A slot that commits every
// commit interval lingers until its commit at least: its copies become
// visible only then, and the commit flushes whatever lingers, so the
// longer linger costs no latency. It saves requests: kgo lingers per
// partition, and traffic spread over thousands of partitions made a
// request of nearly every record, each visiting every partition the
// producer knows (kgo's request building fell from 17% to 8% of ferry's
// CPU at 1,000 topics). Batches of a topic are bounded by its
// max.message.bytes and the tier's batch size, so that the broker never
// refuses a batch for its size, but those of ferry.dlq and of the topics
// in wide, whose records the slot writes one at a time, by wideBatchBytes.
func (l *lane) producerOpts(txnID string, wide map[string]bool) []kgo.Opt {
	c := l.key.client
	linger := c.Linger.D()
	if !l.commitsAtOnce() {
		linger = max(linger, c.CommitInterval.D())
	}
	return append(append([]kgo.Opt(nil), l.dst...),
		kgo.RecordRetries(recordTries),
		kgo.UnknownTopicRetries(2),
		kgo.MetadataMinAge(giveUpAfter(l.key.budget.D())/recordTries),
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(txnTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(linger),
		kafkaconn.Compress(c.Compression),
		kgo.ProducerBatchMaxBytesFn(func(topic string) int32 {
			if topic == systopics.DLQ || wide[topic] {
				return wideBatchBytes
			}
			l.mu.Lock()
			j := l.jobs[topic]
			l.mu.Unlock()
			return l.batchMax(j)
		}),
	)
}

// batchMax is a slot producer's usual batch limit for a job's target topic
// (not in wide): kgo refuses a record larger than it before compression.
func (l *lane) batchMax(j *laneJob) int32 {
	return min(l.key.client.BatchMaxBytes, j.targetMax())
}

// targetMax is the max.message.bytes of the job's target topic (the
// broker's default when unknown or j is nil).
func (j *laneJob) targetMax() int32 {
	if j != nil && j.maxBytes > 0 {
		return j.maxBytes
	}
	return kafkaconn.DefaultMaxMessageBytes
}

// add puts a job in the lane: the slots this process holds take its
// partitions.
func (l *lane) add(env *executor.Env, spec plan.Job, maxBytes int32) *laneJob {
	j := &laneJob{env: env, spec: spec, maxBytes: maxBytes, failed: make(chan error, 1), taken: map[int32]bool{}, held: map[int32]string{}, broken: map[int32]error{}}
	l.mu.Lock()
	l.jobs[spec.Mirror.Topic] = j
	slots := l.heldSlots()
	l.mu.Unlock()
	for _, s := range slots {
		s.add(l.jobParts(j, s.n))
	}
	return j
}

// remove takes a job out of the lane: its slots commit what is pending of
// it and release its partitions. The clients then forget its topic, so
// that the job's next start meets the topic as it is then (deleted and
// made again, kgo would otherwise keep its old ID).
func (l *lane) remove(j *laneJob) {
	topic := j.spec.Mirror.Topic
	l.mu.Lock()
	if l.jobs[topic] == j {
		delete(l.jobs, topic)
	}
	slots := l.heldSlots()
	l.mu.Unlock()
	for _, s := range slots {
		s.drop(j)
		s.forget(topic)
		if q := s.companion(); q != nil {
			q.drop(j)
			q.forget(topic)
		}
	}
	for _, f := range l.fs {
		f.forget(topic)
	}
}

func (l *lane) heldSlots() []*slot {
	out := make([]*slot, 0, len(l.slots))
	for _, s := range l.slots {
		out = append(out, s)
	}
	return out
}

// wanted reports whether the job is still in the lane.
func (l *lane) wanted(j *laneJob) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.jobs[j.spec.Mirror.Topic] == j
}

// partsOf lists the partitions of every job of the lane in slot n.
func (l *lane) partsOf(n int) []*part {
	l.mu.Lock()
	jobs := make([]*laneJob, 0, len(l.jobs))
	for _, j := range l.jobs {
		jobs = append(jobs, j)
	}
	l.mu.Unlock()
	var out []*part
	for _, j := range jobs {
		out = append(out, l.jobParts(j, n)...)
	}
	return out
}

// jobParts lists a job's partitions in slot n, fresh for a slot to take.
func (l *lane) jobParts(j *laneJob, n int) []*part {
	var out []*part
	m := j.spec.Mirror
	for p := int32(0); p < int32(m.Partitions); p++ {
		if slotOf(m.Topic, p) == n {
			out = append(out, newPart(j, p))
		}
	}
	return out
}

// newPart is partition p of a job, fresh for a slot to take.
func newPart(j *laneJob, p int32) *part {
	name := strconv.Itoa(int(p))
	return &part{job: j, topic: j.spec.Mirror.Topic, partition: p, name: name, key: j.spec.ID + "/" + name, poison: map[int64]error{}, last: -1}
}

// started shows the partitions a slot took, and those that wait for
// another lane, in their jobs' status.
func (l *lane) started(got, held []*part) {
	l.mu.Lock()
	for _, p := range got {
		p.job.taken[p.partition] = true
		delete(p.job.held, p.partition)
	}
	for _, p := range held {
		p.job.held[p.partition] = p.heldBy
	}
	jobs := jobsOf(append(got, held...))
	l.mu.Unlock()
	l.showJobs(jobs)
}

// stopped shows that a slot let a partition go.
func (l *lane) stopped(p *part) {
	l.mu.Lock()
	delete(p.job.taken, p.partition)
	p.job.mend(p.partition)
	l.mu.Unlock()
	p.job.env.Metrics.DropPart(p.name)
	l.showJobs([]*laneJob{p.job})
}

// unwait forgets partitions that no longer wait for another lane.
func (l *lane) unwait(parts []*part) {
	l.mu.Lock()
	for _, p := range parts {
		delete(p.job.held, p.partition)
		p.job.mend(p.partition)
	}
	jobs := jobsOf(parts)
	l.mu.Unlock()
	l.showJobs(jobs)
}

// broke shows a partition that cannot be written in its job's status:
// the job is in error while its other partitions are copied, until the
// partition is written again or let go (mended).
func (l *lane) broke(p *part, err error) {
	l.mu.Lock()
	p.job.broken[p.partition] = err
	p.job.nbroken.Store(int32(len(p.job.broken)))
	l.mu.Unlock()
	l.showJobs([]*laneJob{p.job})
}

// mended shows that the partitions of parts that were broken were
// written again.
func (l *lane) mended(parts map[*part]bool) {
	var jobs []*laneJob
	for p := range parts {
		if p.job.nbroken.Load() == 0 {
			continue // every commit's path: no lock
		}
		l.mu.Lock()
		if p.job.mend(p.partition) && !slices.Contains(jobs, p.job) {
			jobs = append(jobs, p.job)
		}
		l.mu.Unlock()
	}
	l.showJobs(jobs)
}

// mend forgets that partition p was broken, and reports whether it was
// (with lane.mu held).
func (j *laneJob) mend(p int32) bool {
	if _, ok := j.broken[p]; !ok {
		return false
	}
	delete(j.broken, p)
	j.nbroken.Store(int32(len(j.broken)))
	return true
}

func jobsOf(parts []*part) []*laneJob {
	var out []*laneJob
	for _, p := range parts {
		if !slices.Contains(out, p.job) {
			out = append(out, p.job)
		}
	}
	return out
}

// showJobs updates the jobs' status: the partitions this process copies;
// a job with a partition that cannot be written is in error, else one
// with partitions another lane holds is waiting for them.
func (l *lane) showJobs(jobs []*laneJob) {
	for _, j := range jobs {
		l.mu.Lock()
		taken := make([]int32, 0, len(j.taken))
		for p := range j.taken {
			taken = append(taken, p)
		}
		var broken, waiting error
		if len(j.broken) > 0 {
			parts := slices.Sorted(maps.Keys(j.broken))
			broken = j.broken[parts[0]]
		}
		if len(j.held) > 0 {
			parts := slices.Sorted(maps.Keys(j.held))
			waiting = fmt.Errorf("partitions %v are held by another lane (%s): taken over once released or idle for %s", parts, j.held[parts[0]], holdTimeout)
		}
		l.mu.Unlock()
		j.env.Metrics.SetAssigned(taken)
		switch state := j.env.Metrics.Status().State; {
		case broken != nil:
			j.env.Metrics.SetState(metrics.StateError, broken)
		case waiting != nil:
			j.env.Metrics.SetState(metrics.StateWaiting, waiting)
		case state == metrics.StateWaiting || state == metrics.StateError:
			j.env.Metrics.SetState(metrics.StateRunning, nil)
		}
	}
}

// fetchFailed handles a partition's failed fetch: a source topic that is
// gone fails its job (whose next start makes it again); other errors are
// retried by the fetcher, retriable broker errors without a word (the
// fetcher looks the partition's leader up again), the rest logged once a
// minute per topic.
func (l *lane) fetchFailed(topic string, part int32, err error) {
	var ke *kerr.Error
	if errors.Is(err, context.Canceled) {
		return
	}
	l.mu.Lock()
	j := l.jobs[topic]
	l.mu.Unlock()
	if j != nil && topicGone(err) {
		j.fail(fmt.Errorf("topic %s cannot be read in %s: %w", topic, l.key.from, err))
		return
	}
	if errors.As(err, &ke) && ke.Retriable {
		return
	}
	l.mu.Lock()
	quiet := time.Since(l.logged[topic]) < time.Minute
	if !quiet {
		l.logged[topic] = time.Now()
	}
	l.mu.Unlock()
	if !quiet {
		l.log.Warn("fetch failed; retrying", "topic", topic, "partition", part, "error", err)
	}
}

// assigned starts the slots the group gives this process.
func (l *lane) assigned(slots []int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range slots {
		if l.slots[int(n)] != nil {
			continue
		}
		s := newSlot(l, int(n))
		l.slots[int(n)] = s
		go s.run(l.ctx)
	}
	l.log.Info("slots assigned", "slots", slots)
}

// revoked stops the slots the group takes from this process: committing
// what is pending when they are revoked, aborting it when they are lost.
func (l *lane) revoked(slots []int32, commit bool) {
	var stop []*slot
	l.mu.Lock()
	for _, n := range slots {
		if s := l.slots[int(n)]; s != nil {
			stop = append(stop, s)
			delete(l.slots, int(n))
		}
	}
	l.mu.Unlock()
	for _, s := range stop {
		s.stop(commit)
	}
}

// holds reports whether this process still holds slot n.
func (l *lane) holds(s *slot) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.slots[s.n] == s
}

// close stops the lane once its last job left: its slots, then its
// membership and clients.
func (l *lane) close() {
	l.mu.Lock()
	slots := l.heldSlots()
	l.slots = map[int]*slot{}
	l.mu.Unlock()
	for _, s := range slots {
		s.stop(true)
	}
	l.cancel()
	l.group.Close()
	l.closeFetchers()
	l.wg.Wait()
	l.adm.Close()
}
