package offsets

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/schema"
)

// Counters of the offsets job, per group.
const (
	Committed     = "offsets_committed" // partition offsets committed in the target
	SkippedActive = "skipped_active"    // rounds that left the group alone: active in the target
	Failed        = "failed"            // rounds that could not translate the group
)

// minInterval bounds how often the job runs, whatever the plan says.
const minInterval = 100 * time.Millisecond

// ownGroups is the prefix of ferry's own consumer groups (ferry.<shard>.<job>):
// each datacenter's executors have theirs, never translated.
const ownGroups = "ferry."

// syncJob is the offsets job kind: every budget of its tier, it translates the
// committed offsets of the groups matching the definitions' patterns from
// one datacenter to another and commits them there, for the groups that are
// inactive in the target. It only moves a group's offsets forward, so the
// jobs of the two directions never undo each other: the datacenter where a
// group last consumed wins. A group active in the target is never touched.
// ferry run wraps the kind in executor.Exclusive: one process of the shard
// runs the job at a time.
type syncJob struct {
	env      *executor.Env
	spec     plan.Job
	patterns []*regexp.Regexp
	topics   []Topic
	names    []string
	// last is, per group, the source offsets translated last time and
	// whether records were still on their way then: unchanged offsets with
	// nothing on its way translate to the same targets.
	last map[string]translated
	// failing is, per group, the error last logged: a failure is logged
	// when it starts or changes, not every round.
	failing map[string]string
}

type translated struct {
	committed map[string]map[int32]int64
	pending   bool
}

// NewSync builds an offsets job from its plan entry.
func NewSync(env *executor.Env, spec plan.Job) (executor.Runner, error) {
	o := spec.Offsets
	if o == nil {
		return nil, fmt.Errorf("%s: not an offsets job", spec.ID)
	}
	s := &syncJob{env: env, spec: spec, last: map[string]translated{}, failing: map[string]string{}}
	for _, p := range o.Groups {
		re, err := schema.GroupPattern(p)
		if err != nil {
			return nil, fmt.Errorf("%s: group pattern %w", spec.ID, err)
		}
		s.patterns = append(s.patterns, re)
	}
	for _, t := range o.Topics {
		s.topics = append(s.topics, Topic{Name: t.Topic, Datacenters: t.Datacenters})
		s.names = append(s.names, t.Topic)
	}
	return s, nil
}

// Run translates every budget until ctx ends. A round that cannot list the
// source's groups ends the job as waiting for the source (or refused by
// it), and the executor starts it again.
func (s *syncJob) Run(ctx context.Context) error {
	from, err := s.env.Kafka(s.spec.Offsets.From)
	if err != nil {
		return err
	}
	to, err := s.env.Kafka(s.spec.Offsets.To)
	if err != nil {
		return err
	}
	tr, err := New(s.spec.Offsets.From, from, s.spec.Offsets.To, to)
	if err != nil {
		return err
	}
	defer tr.Close()
	s.env.Metrics.SetState(metrics.StateRunning, nil)
	tick := time.NewTicker(max(s.spec.Budget.D(), minInterval))
	defer tick.Stop()
	for {
		if err := s.round(ctx, tr); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (s *syncJob) round(ctx context.Context, tr *Translator) error {
	listed, err := tr.from.adm.ListGroups(ctx)
	if err != nil {
		return s.env.Unreachable(ctx, tr.from.name, err)
	}
	for g := range s.last {
		if _, ok := listed[g]; !ok {
			delete(s.last, g) // deleted groups are forgotten
		}
	}
	for _, g := range listed.Groups() {
		if !s.matches(g) {
			continue
		}
		err := s.sync(ctx, tr, g)
		var active *ActiveError
		switch {
		case errors.As(err, &active):
			s.env.Metrics.Count(g, SkippedActive, 1)
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			s.env.Metrics.Count(g, Failed, 1)
			if s.failing[g] != err.Error() {
				s.failing[g] = err.Error()
				s.env.Logger.Warn("group offsets not translated; retrying every round", "group", g, "error", err)
			}
		default:
			delete(s.failing, g)
		}
	}
	return nil
}

func (s *syncJob) matches(group string) bool {
	if strings.HasPrefix(group, ownGroups) {
		return false
	}
	return slices.ContainsFunc(s.patterns, func(re *regexp.Regexp) bool { return re.MatchString(group) })
}

// sync translates one group and commits the partitions whose target is
// ahead of what the group has committed in the target.
func (s *syncJob) sync(ctx context.Context, tr *Translator, group string) error {
	if err := tr.Inactive(ctx, group); err != nil {
		return err
	}
	committed, err := tr.from.committed(ctx, group, s.names)
	if err != nil || len(committed) == 0 {
		return err
	}
	if last, ok := s.last[group]; ok && !last.pending && maps.EqualFunc(last.committed, committed, maps.Equal) {
		return nil
	}
	parts, err := tr.Translate(ctx, s.topics, committed)
	if err != nil {
		return err
	}
	current, err := tr.to.committed(ctx, group, s.names)
	if err != nil {
		return err
	}
	var ahead []Partition
	pending := false
	for _, p := range parts {
		pending = pending || p.Pending > 0
		if !p.Translated() {
			continue
		}
		// Ahead means past records the group would read again from where
		// it is; a move over control records only would change nothing.
		cur, has := current[p.Topic][p.Partition]
		move := !has
		if has && p.Target > cur {
			if move, err = tr.to.hasRecords(ctx, p.Topic, p.Partition, cur, p.Target); err != nil {
				return err
			}
		}
		if move {
			ahead = append(ahead, p)
		}
	}
	if len(ahead) > 0 {
		if err := tr.Commit(ctx, group, ahead); err != nil {
			return err
		}
		s.env.Metrics.Count(group, Committed, int64(len(ahead)))
	}
	s.last[group] = translated{committed: committed, pending: pending}
	return nil
}
