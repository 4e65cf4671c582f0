// Package cdc is the executor's "cdc" job kind: one MySQL or MariaDB
// source captured from its binlog into Debezium-compatible Kafka events,
// exactly once, with a parallel lock-free initial load (DBLog watermarks)
// and tables added on the running binlog connection.
//
// One goroutine owns the job's state. It reads whole MySQL transactions
// from the binlog reader, turns their rows into Kafka records, and commits
// them in Kafka transactions at MySQL transaction boundaries together with
// a checkpoint (binlog file, position, GTID set, each table's snapshot
// progress) in ferry.checkpoints. On start it fences earlier producers of
// the job, reads the checkpoint back and resumes from it, so a crash at any
// moment leaves neither a gap nor a duplicate.
package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/cdcstate"
	"github.com/ferry-pipelines/ferry/runtime/checkpoint"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/secret"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
	"github.com/ferry-pipelines/ferry/schema"
)

// Defaults.
const (
	// DefaultPartitions is the partition count of a CDC topic ferry
	// creates. One partition keeps every event of a table in commit order
	// for every consumer; a topic created beforehand with more partitions
	// is used as it is (records are spread by the murmur2 hash of the key,
	// as Kafka's default partitioner does, so a key stays in order).
	DefaultPartitions  = 1
	DefaultChunkSize   = 8192
	DefaultParallelism = 4
	DefaultHeartbeat   = 100 * time.Millisecond
	DefaultHeartbeatDB = "ferry"
	// maxTxnBytes bounds a Kafka transaction: past it the job commits at
	// the next MySQL transaction boundary whatever the commit interval.
	maxTxnBytes = 16 << 20
	// idleCommit is how often the position is committed when no captured
	// table changes (so a restart does not re-read much of the binlog).
	idleCommit = time.Second
)

// source runs a CDC source job: the runner of its plan entry.
type source struct {
	env *executor.Env
	log *slog.Logger

	mu      sync.Mutex
	job     plan.Job
	pending *plan.Job
	notify  chan struct{}
	poison  map[string]poison // records too large for their topic, by eventID (poison.go)
}

// New builds a CDC job from its plan entry.
func New(env *executor.Env, job plan.Job) (executor.Runner, error) {
	if job.CDC == nil {
		return nil, fmt.Errorf("%s: plan entry has no cdc block", job.ID)
	}
	if len(job.CDC.Tables) == 0 {
		return nil, fmt.Errorf("%s: no tables", job.ID)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &source{env: env, log: log.With("job", job.ID), job: job, notify: make(chan struct{}, 1)}, nil
}

var _ executor.Updater = (*source)(nil)

// Update takes a changed plan entry that only adds or removes tables (or
// changes a table's tier or snapshot mode) and applies it on the running
// binlog connection: a new table starts with its own snapshot mode, the
// others go on untouched. Any other change needs a restart (false).
func (j *source) Update(job plan.Job) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !onlyTablesChanged(j.job, job) {
		return false
	}
	cp := job
	j.pending = &cp
	select {
	case j.notify <- struct{}{}:
	default:
	}
	return true
}

func onlyTablesChanged(a, b plan.Job) bool {
	if a.CDC == nil || b.CDC == nil || len(b.CDC.Tables) == 0 {
		return false
	}
	ca, cb := *a.CDC, *b.CDC
	ca.Tables, cb.Tables = nil, nil
	a.CDC, b.CDC = &ca, &cb
	// The weight follows the tables; the tier and budget follow the
	// strictest table, and with them the client settings.
	a.Weight, b.Weight = 0, 0
	return reflect.DeepEqual(a, b)
}

func (j *source) takeUpdate() *plan.Job {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.pending
	j.pending = nil
	if p != nil {
		j.job = *p
	}
	return p
}

func (j *source) current() plan.Job {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.job
}

// Run captures the source until ctx ends.
func (j *source) Run(ctx context.Context) error {
	m := j.env.Metrics
	err := j.stream(ctx)
	if errors.Is(err, kafkaconn.ErrFirstCommitLost) && ctx.Err() == nil {
		// A client glitch (kgo v1.22 ended a new producer's first
		// transaction with an abort, reporting a commit), not the job's
		// fault: nothing of that transaction is visible, and the job
		// starts again at once from its last checkpoint, once.
		j.log.Warn("starting again from the last checkpoint", "error", err)
		err = j.stream(ctx)
	}
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		m.SetState(metrics.StateStopped, nil)
		return nil
	}
	if err != nil {
		m.SetState(metrics.StateError, err)
	}
	return err
}

// stream starts the job and streams until ctx ends or the job fails.
func (j *source) stream(ctx context.Context) error {
	j.env.Metrics.SetState(metrics.StateStarting, nil)
	r, err := j.start(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return context.Canceled // stopped while starting
		}
		return err
	}
	defer r.close()
	return r.loop(ctx)
}

// accessDenied returns the server's message when err is its refusal of
// the user's credentials (ERROR 1045), else "".
func accessDenied(err error) string {
	var my *mysql.MyError
	if errors.As(err, &my) && my.Code == mysql.ER_ACCESS_DENIED_ERROR {
		return my.Message
	}
	return ""
}

// binlogConfig resolves the source's connection settings.
func binlogConfig(job plan.Job, log *slog.Logger) (binlog.Config, error) {
	my := job.CDC.MySQL
	pass, err := secret.Resolve(my.Password)
	if err != nil {
		return binlog.Config{}, fmt.Errorf("%s: mysql.password: %w", job.ID, err)
	}
	cfg := binlog.Config{Addr: my.Address, User: my.User, Password: pass, ServerID: my.ServerID, Flavor: my.Flavor, Logger: log, RawYears: my.RawYears()}
	for _, t := range job.CDC.Tables {
		if len(t.Key) > 0 {
			if cfg.Keys == nil {
				cfg.Keys = map[string][]string{}
			}
			cfg.Keys[t.Name] = t.Key
		}
	}
	if my.TLS != nil {
		t, err := kafkaconn.TLSConfigFor(my.TLS, my.Address)
		if err != nil {
			return cfg, fmt.Errorf("%s: mysql.tls: %w", job.ID, err)
		}
		cfg.TLS = t
	}
	return cfg, nil
}

func heartbeatSettings(h *schema.Heartbeat) (time.Duration, string, error) {
	interval, db := DefaultHeartbeat, DefaultHeartbeatDB
	if h != nil {
		if h.Interval != "" {
			d, err := time.ParseDuration(h.Interval)
			if err != nil || d <= 0 {
				return 0, "", fmt.Errorf("mysql.heartbeat.interval %q: want a duration such as \"100ms\"", h.Interval)
			}
			interval = d
		}
		if h.Database != "" {
			db = h.Database
		}
	}
	return interval, db, nil
}

// start checks the server, provisions topics, fences the job's earlier
// producers and loads the checkpoint.
func (j *source) start(ctx context.Context) (*runner, error) {
	job := j.current()
	m := j.env.Metrics
	cfg, err := binlogConfig(job, j.log)
	if err != nil {
		return nil, err
	}
	hbInterval, hbDB, err := heartbeatSettings(job.CDC.MySQL.Heartbeat)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", job.ID, err)
	}
	var dbs []string
	seen := map[string]bool{}
	for _, t := range job.CDC.Tables {
		if !seen[t.Database] {
			seen[t.Database] = true
			dbs = append(dbs, t.Database)
		}
	}
	// The server: checked at start, waited for while it cannot be reached.
	var srv binlog.Server
	backoff := newBackoff()
	for {
		srv, err = binlog.Check(ctx, cfg, job.ID, dbs)
		var ref *binlog.Refusal
		if err == nil || errors.As(err, &ref) {
			break
		}
		if denied := accessDenied(err); denied != "" {
			// Wrong credentials: no wait fixes them.
			return nil, fmt.Errorf("%s: MySQL at %s refused user %s (%s): check mysql.user and the password in %s", job.ID, cfg.Addr, cfg.User, denied, secret.Describe(job.CDC.MySQL.Password))
		}
		m.SetState(metrics.StateWaiting, fmt.Errorf("%s: MySQL at %s: %v", job.ID, cfg.Addr, err))
		if !backoff.wait(ctx) {
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	if err := ensureOwnTables(ctx, cfg, job.ID, hbDB); err != nil {
		return nil, err
	}

	// Kafka: topics, the transactional producer (fenced), the checkpoint.
	opts, err := j.env.Kafka(job.CDC.Datacenter)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", job.ID, err)
	}
	limits, err := provision(ctx, opts, job)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", job.ID, err)
	}
	poison, alone := j.poisoned()
	cl, err := openProducer(ctx, opts, job, limits, alone)
	if err != nil {
		return nil, err
	}
	values, err := checkpoint.Load(ctx, opts, job.ID)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("%s: %w", job.ID, err)
	}
	var st *cdcstate.State
	if b, ok := values[cdcstate.Key]; ok {
		if st, err = cdcstate.Decode(b); err != nil {
			cl.Close()
			return nil, fmt.Errorf("%s: checkpoint: %v", job.ID, err)
		}
	}
	r := &runner{
		src: j, job: job, cfg: cfg, srv: srv, cl: cl, opts: opts, limits: limits, poison: poison, alone: alone,
		hbInterval: hbInterval, hbDB: hbDB, log: j.log, m: m,
	}
	r.promise = r.produced
	if err := r.init(ctx, st); err != nil {
		cl.Close()
		return nil, err
	}
	return r, nil
}

// openProducer starts the job's transactional producer, fencing its
// earlier ones.
func openProducer(ctx context.Context, opts []kgo.Opt, job plan.Job, limits map[string]int32, alone map[string]bool) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...), producerOpts(job, limits, alone)...)...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", job.ID, err)
	}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("%s: init transactional producer: %w", job.ID, err)
	}
	return cl, nil
}

// aloneBatchBytes is the batch limit of a topic whose records are written
// one at a time (poison.go): only the broker judges them. It is kgo's
// default BrokerMaxWriteBytes, which bounds it anyway.
const aloneBatchBytes = 100 << 20

// producerOpts are the producer's options. A topic's batches are bounded
// by its max.message.bytes (limits; Kafka's default for a topic added
// since), so that the broker never refuses one for its size, ferry.dlq's
// by its own, and those of the topics written one record at a time by
// aloneBatchBytes.
func producerOpts(job plan.Job, limits map[string]int32, alone map[string]bool) []kgo.Opt {
	c := job.Client
	opts := []kgo.Opt{
		kgo.TransactionalID("ferry." + job.ID),
		kgo.TransactionTimeout(60 * time.Second),
		kgo.RecordPartitioner(partitioner{kgo.StickyKeyPartitioner(nil)}),
		kgo.ProducerLinger(c.Linger.D()),
		kgo.MaxBufferedRecords(100_000),
		kgo.RecordRetries(10),
	}
	opts = append(opts, kgo.ProducerBatchMaxBytesFn(func(topic string) int32 {
		switch {
		case alone[topic]:
			return aloneBatchBytes
		case topic == systopics.DLQ:
			return systopics.DLQMaxMessageBytes
		case limits[topic] > 0:
			return limits[topic]
		}
		return kafkaconn.DefaultMaxMessageBytes
	}))
	opts = append(opts, kafkaconn.Compress(c.Compression))
	return opts
}

// partitioner places ferry's own records (checkpoints, dead letters) on the
// partition they name and CDC records like Kafka's default partitioner:
// murmur2 of the key.
type partitioner struct{ keyed kgo.Partitioner }

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if strings.HasPrefix(topic, "ferry.") {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return p.keyed.ForTopic(topic)
}

// provision creates ferry's system topics and the missing CDC topics in the
// target datacenter (existing topics are used as they are) and returns
// each CDC topic's max.message.bytes.
func provision(ctx context.Context, opts []kgo.Opt, job plan.Job) (map[string]int32, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if err := systopics.Ensure(ctx, adm, systopics.Checkpoints, systopics.DLQ); err != nil {
		return nil, err
	}
	if err := ensureTopics(ctx, adm, job.CDC.Tables); err != nil {
		return nil, err
	}
	topics := make([]string, len(job.CDC.Tables))
	for i, t := range job.CDC.Tables {
		topics[i] = t.Topic
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("describe the CDC topics: %w", err)
	}
	limits := make(map[string]int32, len(topics))
	for _, t := range topics {
		limits[t] = kafkaconn.MaxMessageBytes(rcs, t)
	}
	return limits, nil
}

func ensureTopics(ctx context.Context, adm *kadm.Client, tables []plan.CDCTable) error {
	for _, t := range tables {
		resp, err := adm.CreateTopic(ctx, DefaultPartitions, -1, nil, t.Topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.Topic, err)
		}
	}
	return nil
}

// ensureOwnTables creates ferry's heartbeat and watermark tables.
func ensureOwnTables(ctx context.Context, cfg binlog.Config, jobID, db string) error {
	c, err := binlog.Connect(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", jobID, err)
	}
	defer c.Close()
	q := mysql.Escape
	for _, s := range []string{
		"CREATE DATABASE IF NOT EXISTS `" + q(db) + "`",
		"CREATE TABLE IF NOT EXISTS `" + q(db) + "`.`" + heartbeatTable + "` (server_id INT UNSIGNED NOT NULL PRIMARY KEY, ts TIMESTAMP(6) NULL) ENGINE=InnoDB",
		"CREATE TABLE IF NOT EXISTS `" + q(db) + "`.`" + watermarkTable + "` (slot VARCHAR(255) NOT NULL PRIMARY KEY, token VARCHAR(64) NOT NULL) ENGINE=InnoDB",
	} {
		if _, err := c.Execute(s); err != nil {
			return fmt.Errorf("%s: user %s cannot create ferry's heartbeat and watermark tables in database %s (%v); GRANT ALL ON %s.* TO '%s'", jobID, cfg.User, db, firstLine(err.Error()), db, cfg.User)
		}
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// backoff waits 100 ms, doubling to 2 s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 100 * time.Millisecond} }

func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.d)
	defer t.Stop()
	b.d = min(2*b.d, 2*time.Second)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (b *backoff) reset() { b.d = 100 * time.Millisecond }

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
