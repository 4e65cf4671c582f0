package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// provisionWindow is how long a provisioner gathers requests into one
// round of admin requests: a thousand jobs starting together cost a few
// requests, not a few thousand clients.
const provisionWindow = 20 * time.Millisecond

// provisioner makes sure mirror topics exist in one datacenter, with one
// admin client for every job of the executor.
type provisioner struct {
	dc     string
	adm    *kadm.Client
	logger *slog.Logger

	mu      sync.Mutex
	queue   []*provisionReq
	running bool
	system  bool // ferry's own topics exist
}

type provisionReq struct {
	spec     *plan.MirrorJob
	logger   *slog.Logger
	maxBytes int32
	err      error
	done     chan struct{}
}

func newProvisioner(dc string, opts []kgo.Opt, logger *slog.Logger) (*provisioner, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &provisioner{dc: dc, adm: kadm.NewClient(cl), logger: logger}, nil
}

// ensure makes sure the topic exists in the datacenter with the declared
// partition count, creating it when missing. Another partition count is an
// error naming the datacenter, the topic and both counts: ferry never
// changes a partition count, because that would move keys between
// partitions. It returns the topic's max.message.bytes.
func (p *provisioner) ensure(ctx context.Context, logger *slog.Logger, spec *plan.MirrorJob) (int32, error) {
	req := &provisionReq{spec: spec, logger: logger, done: make(chan struct{})}
	p.mu.Lock()
	p.queue = append(p.queue, req)
	if !p.running {
		p.running = true
		go p.run()
	}
	p.mu.Unlock()
	select {
	case <-req.done:
		return req.maxBytes, req.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// run answers the queued requests in rounds until the queue is empty.
func (p *provisioner) run() {
	for {
		time.Sleep(provisionWindow)
		p.mu.Lock()
		reqs := p.queue
		p.queue = nil
		if len(reqs) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		p.round(ctx, reqs)
		cancel()
		for _, r := range reqs {
			close(r.done)
		}
	}
}

// round provisions the topics of reqs: one listing, the creations of the
// missing ones, one description of their configs.
func (p *provisioner) round(ctx context.Context, reqs []*provisionReq) {
	fail := func(err error) {
		for _, r := range reqs {
			if r.err == nil {
				r.err = err
			}
		}
	}
	names := make([]string, 0, len(reqs))
	for _, r := range reqs {
		names = append(names, r.spec.Topic)
	}
	topics, err := p.adm.ListTopics(ctx, names...)
	if err != nil {
		fail(&unreachableError{err})
		return
	}
	if !p.system {
		if err := systopics.Ensure(ctx, p.adm, systopics.DLQ, systopics.Checkpoints, systopics.Slots); err != nil {
			fail(&unreachableError{fmt.Errorf("datacenter %s: %w", p.dc, err)})
			return
		}
		p.system = true
	}
	for _, r := range reqs {
		if t, ok := topics[r.spec.Topic]; !ok || errors.Is(t.Err, kerr.UnknownTopicOrPartition) {
			if t, r.err = p.create(ctx, r); r.err == nil {
				topics[r.spec.Topic] = t
			}
		}
	}
	configs, err := p.adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		fail(&unreachableError{err})
		return
	}
	for _, r := range reqs {
		if r.err != nil {
			continue
		}
		t := topics[r.spec.Topic]
		switch {
		case t.Err != nil:
			r.err = fmt.Errorf("topic %s in %s: %w", r.spec.Topic, p.dc, t.Err)
		case len(t.Partitions) != r.spec.Partitions:
			r.err = fmt.Errorf("topic %s has %d partitions in %s but the definition declares %d: ferry never changes a partition count; change the definition or recreate the topic", r.spec.Topic, len(t.Partitions), p.dc, r.spec.Partitions)
		default:
			r.maxBytes = kafkaconn.MaxMessageBytes(configs, r.spec.Topic)
		}
	}
}

// create creates a missing topic and waits until its metadata shows.
func (p *provisioner) create(ctx context.Context, r *provisionReq) (kadm.TopicDetail, error) {
	spec := r.spec
	rf := int16(-1)
	if spec.ReplicationFactor > 0 {
		rf = int16(spec.ReplicationFactor)
	}
	configs := map[string]*string{}
	for k, v := range spec.Config {
		configs[k] = &v
	}
	resp, err := p.adm.CreateTopic(ctx, int32(spec.Partitions), rf, configs, spec.Topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return kadm.TopicDetail{}, fmt.Errorf("create topic %s in %s: %w", spec.Topic, p.dc, err)
	}
	if err == nil {
		r.logger.Info("created topic", "topic", spec.Topic, "datacenter", p.dc, "partitions", spec.Partitions)
	}
	for i := 0; ; i++ {
		topics, err := p.adm.ListTopics(ctx, spec.Topic)
		if err != nil {
			return kadm.TopicDetail{}, &unreachableError{err}
		}
		if t := topics[spec.Topic]; t.Err == nil && len(t.Partitions) > 0 || i == 50 {
			return t, nil
		}
		select {
		case <-ctx.Done():
			return kadm.TopicDetail{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// unreachableError marks a failed request to the datacenter, which the job
// reports as waiting for it rather than as its own error.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

func unreachable(err error) bool {
	var u *unreachableError
	return errors.As(err, &u)
}
