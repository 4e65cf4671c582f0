package metrics

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// Reporter writes, every interval, one Report per job to the topic
// ferry.metrics of the datacenter the job writes to, keyed by job ID, so
// that thousands of jobs can be analysed over months (a ClickHouse Kafka
// engine table ingests the topic; see docs/operating.md).
type Reporter struct {
	reg     *Registry
	logger  *slog.Logger
	clients map[string]*kgo.Client
}

// NewReporter returns a reporter over the jobs of reg.
func NewReporter(reg *Registry, logger *slog.Logger) *Reporter {
	return &Reporter{reg: reg, logger: logger, clients: map[string]*kgo.Client{}}
}

// Run reports at the interval of the current plan (metrics.interval) until
// ctx ends, then reports once more so the last interval is not lost.
func (rep *Reporter) Run(ctx context.Context, current func() *plan.Plan) {
	defer rep.close()
	for {
		p := current()
		interval := time.Duration(0)
		if p != nil {
			interval = p.Metrics.Interval.D()
		}
		if interval <= 0 {
			interval = 10 * time.Second
		}
		select {
		case <-ctx.Done():
			if p != nil {
				flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				rep.Report(flush, p, 0)
				cancel()
			}
			return
		case <-time.After(interval):
		}
		if p = current(); p != nil {
			rep.Report(ctx, p, interval/10)
		}
	}
}

// reportStep is how many jobs the reporter reports at once. Between steps
// it pauses, so that a report of thousands of jobs spreads over a tenth of
// the interval: at once, 2,000 jobs' reports took a core and the brokers
// for about 100 ms, and Tier 1 records waited behind them.
const reportStep = 50

// Report writes the interval report of every job and starts the next
// interval, over about spread (0: at once). Each job's interval ends when
// its report is taken.
func (rep *Reporter) Report(ctx context.Context, p *plan.Plan, spread time.Duration) {
	jobs := rep.reg.Jobs()
	var pause time.Duration
	if steps := (len(jobs) - 1) / reportStep; steps > 0 {
		pause = spread / time.Duration(steps)
	}
	for i, j := range jobs {
		if i > 0 && i%reportStep == 0 && pause > 0 {
			select {
			case <-ctx.Done():
				return // Run reports the rest as it stops
			case <-time.After(pause):
			}
		}
		r := j.Interval(time.Now())
		dc := j.Info.Datacenter()
		cl := rep.client(ctx, p, dc)
		if cl == nil {
			continue
		}
		value, _ := json.Marshal(r)
		cl.Produce(ctx, &kgo.Record{Topic: systopics.Metrics, Key: []byte(r.Job), Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				rep.logger.Warn("metrics report not written", "job", r.Job, "datacenter", dc, "error", err)
			}
		})
	}
	for _, cl := range rep.clients {
		_ = cl.Flush(ctx)
	}
}

// client returns the producer of a datacenter, creating ferry.metrics there
// on first use.
func (rep *Reporter) client(ctx context.Context, p *plan.Plan, dc string) *kgo.Client {
	if cl, ok := rep.clients[dc]; ok {
		return cl
	}
	d, ok := p.Datacenters[dc]
	if !ok {
		return nil
	}
	opts, err := kafkaconn.Options(d)
	if err == nil {
		var cl *kgo.Client
		if cl, err = kgo.NewClient(append(opts, kgo.ProducerLinger(50*time.Millisecond))...); err == nil {
			if err = systopics.Ensure(ctx, kadm.NewClient(cl), systopics.Metrics); err == nil {
				rep.clients[dc] = cl
				return cl
			}
			cl.Close()
		}
	}
	rep.logger.Warn("metrics reporter cannot reach datacenter; retrying next interval", "datacenter", dc, "error", err)
	return nil
}

func (rep *Reporter) close() {
	for _, cl := range rep.clients {
		cl.Close()
	}
}
