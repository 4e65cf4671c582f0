package sink

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/executor"
)

// poolIdle is how long a pooled connection may sit unused before it is
// closed: a sink with nothing to apply holds no connection for long.
const poolIdle = time.Minute

// targets are the PostgreSQL connections an executor's sink jobs share: one
// pool per target database and tier (pgxpool's default size, max(4, CPUs)).
// A job holds a connection only while it applies a batch or reads its
// offsets, so idle sinks hold none, and a process's connections to one
// database are bounded by tiers times the pool size, not by its tables:
// a sink per table would otherwise exhaust PostgreSQL's max_connections
// (100 by default). Tiers keep their own pools, so a Tier 4 batch never
// waits for a connection a Tier 1 one needs, and the other way round.
type targets struct {
	mu    sync.Mutex
	pools map[targetKey]*target
}

type targetKey struct {
	dsn  string // the resolved connection string: never logged
	tier int
}

type target struct {
	pool *pgxpool.Pool
	refs int
}

// Option configures the sink kind.
type Option func(*consumers)

// WithLogger sets the logger of what the jobs share (their Kafka
// consumers). Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(cs *consumers) { cs.logger = l } }

// NewKind returns the sink kind of one executor: its jobs share their
// PostgreSQL pools and Kafka consumers.
func NewKind(opts ...Option) executor.Kind {
	ts := &targets{pools: map[targetKey]*target{}}
	cs := &consumers{logger: slog.Default(), shared: map[consumerKey]*consumer{}}
	for _, o := range opts {
		o(cs)
	}
	return func(env *executor.Env, spec plan.Job) (executor.Runner, error) { return newJob(env, spec, ts, cs) }
}

// open returns the pool of the job's target and tier, and the function
// that lets it go (the last job to let it go closes it).
func (ts *targets) open(id string, s *plan.SinkJob, tier int) (*pgxpool.Pool, func(), error) {
	cfg, err := targetConfig(id, s)
	if err != nil {
		return nil, nil, err
	}
	key := targetKey{dsn: cfg.ConnString(), tier: tier}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := ts.pools[key]
	if t == nil {
		cfg.MaxConnIdleTime = poolIdle
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			return nil, nil, err
		}
		t = &target{pool: pool}
		ts.pools[key] = t
	}
	t.refs++
	var once sync.Once
	return t.pool, func() {
		once.Do(func() {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			if t.refs--; t.refs == 0 {
				t.pool.Close()
				delete(ts.pools, key)
			}
		})
	}, nil
}
