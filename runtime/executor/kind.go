package executor

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// Runner runs a job of a plan (a plan.Job) for a job kind. Run works until
// ctx is cancelled, then stops cleanly (committing or aborting what is in
// flight) and returns nil; an error means the job failed, and the executor
// starts it again after a backoff. It reports the job's figures and state
// through Env.Metrics.
type Runner interface {
	Run(ctx context.Context) error
}

// Updater is implemented by jobs that can take a changed plan entry while
// running (a CDC source gaining a table captures it on the same binlog
// connection). Update returns false when the change needs a restart.
type Updater interface {
	Update(job plan.Job) bool
}

// Kind builds the runner of a job of one kind ("mirror", "cdc", ...) from
// its plan entry.
type Kind func(env *Env, job plan.Job) (Runner, error)

// Env is what the executor hands a job.
type Env struct {
	Plan    *plan.Plan
	Shard   string // the shard this process runs ("" for all)
	Process string // this process's name, unique among the shard's processes
	// Instance is a stable name for this process across restarts (a
	// Kubernetes pod name, say), used for static group membership so that a
	// restarted process takes its work back without waiting for its old
	// session to expire. Empty: dynamic membership.
	Instance string
	Logger   *slog.Logger
	Metrics  *metrics.Job
}

// Kafka returns the client options of a datacenter of the plan.
func (e *Env) Kafka(dc string) ([]kgo.Opt, error) {
	d, ok := e.Plan.Datacenters[dc]
	if !ok {
		return nil, fmt.Errorf("datacenter %s is not in the plan", dc)
	}
	opts, err := kafkaconn.Options(d)
	if err != nil {
		return nil, fmt.Errorf("datacenter %s: %w", dc, err)
	}
	if e.Logger != nil {
		opts = append(opts, kgo.WithLogger(kafkaconn.Logger(e.Logger.With("datacenter", dc))))
	}
	return opts, nil
}

// Unreachable is the error of a job whose request to datacenter dc failed
// with err: the datacenter's refusal of ferry's SASL or TLS settings, which
// the job reports as an error, or else a WaitingError, the datacenter
// being away.
func (e *Env) Unreachable(ctx context.Context, dc string, err error) error {
	if refused := kafkaconn.Diagnose(ctx, dc, e.Plan.Datacenters[dc]); refused != nil {
		return refused
	}
	return Waiting(fmt.Errorf("datacenter %s cannot be reached: %w", dc, err))
}

// Group is the consumer group through which the processes of a shard share
// a job's work: ferry.<shard>.<job>.
func Group(shard, job string) string { return "ferry." + shard + "." + job }

// DefaultProcess names this process when no name is given: host name and
// process ID.
func DefaultProcess() string {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
