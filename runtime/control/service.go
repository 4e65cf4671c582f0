// Package control is the control API of an executor group: the definition
// set stored in Kafka, one record per object, and the HTTP API that reads
// and changes it.
//
// Storage. Objects live in the compacted topic ferry.definitions (one
// partition) of the home datacenter, keyed "KIND/NAME", valued
// {spec, version, owner, updated}; a deletion is a tombstone. Every
// executor tails the topic read_committed and holds the whole state, so
// any executor serves reads and takes writes, and none is a single point
// of failure. When the state changes, each executor compiles it and hands
// the plan to its runner (Service.Plans).
//
// Writes. A write (one object, or a batch of them, all or none) is checked
// against the state — versions (a stale one is refused with 409), owners
// (403), and the whole resulting definition set compiling (400) — and
// committed in one Kafka transaction. Writers on different executors are
// serialized by sharing one transactional ID: before reading the state to
// check against, a writer takes the ID, which fences the previous holder
// and aborts its open transaction; it then reads up to the topic's high
// watermark (waiting for open transactions to end), checks, and commits.
// A commit can only succeed if nobody took the ID since, so every committed
// change was checked against every change committed before it: writes are
// linearizable, a stale version can never overwrite a newer one, and the
// stored set always compiles. A fenced writer retries its check against the
// new state (and answers 409 if its base version is now stale). Aborted
// transactions are invisible to readers and removed by compaction, so the
// latest record of a key is always its committed state.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/control/api"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// maxAttempts bounds the retries of a write fenced by another executor's.
const maxAttempts = 10

// backoff is the wait before retrying attempt n: random, so that two
// executors that fenced each other do not collide again, and growing up to
// a second.
func backoff(n int) time.Duration {
	limit := min(10*time.Millisecond<<n, time.Second)
	return rand.N(limit)
}

// Option configures a Service.
type Option func(*Service)

// WithLogger sets the logger. Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.logger = l } }

// WithTokens makes the API require "Authorization: Bearer TOKEN" of one
// of tokens on every request, and a write's Ferry-Owner to be one its
// token may write as (see Tokens). Default: no tokens; serve the API on a
// loopback address only (CheckExposure), where every caller is an admin.
func WithTokens(tokens Tokens) Option { return func(s *Service) { s.tokens = tokens } }

// Service is one executor's part of the control API.
type Service struct {
	logger *slog.Logger
	tokens Tokens
	adm    *kgo.Client // asks for the end of ferry.definitions
	tail   *tail
	cancel context.CancelFunc

	wmu sync.Mutex // serializes this executor's writes
	w   writer

	memo memo

	mu      sync.Mutex
	plan    *plan.Plan
	planErr *api.Error // why the stored set does not compile, if it does not
	plans   chan *plan.Plan
}

// NewService creates ferry.definitions in the home datacenter if needed,
// reads it to the end and compiles it, then follows it until Close. home
// holds the client options of the home datacenter (kafkaconn.Options).
func NewService(ctx context.Context, home []kgo.Opt, opts ...Option) (*Service, error) {
	s := &Service{logger: slog.Default(), plans: make(chan *plan.Plan, 1)}
	for _, o := range opts {
		o(s)
	}
	s.w.opts = home
	adm, err := kgo.NewClient(home...)
	if err != nil {
		return nil, err
	}
	if err := systopics.Ensure(ctx, kadm.NewClient(adm), systopics.Definitions); err != nil {
		adm.Close()
		return nil, fmt.Errorf("home datacenter: %w", err)
	}
	s.adm = adm
	t, err := newTail(home, s.logger)
	if err != nil {
		adm.Close()
		return nil, err
	}
	s.tail = t
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go t.run(runCtx)
	end, err := endOffset(ctx, adm)
	if err == nil {
		err = t.waitFor(ctx, end)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("read stored definitions: %w", err)
	}
	objs, rev := t.state()
	s.recompile(objs)
	go s.follow(runCtx, rev)
	return s, nil
}

// Close stops following the stored definitions.
func (s *Service) Close() {
	s.cancel()
	s.tail.close()
	s.adm.Close()
	s.wmu.Lock()
	s.w.reset()
	s.wmu.Unlock()
}

// Plans delivers the plan of the stored definitions: the first one at
// once, then a new one whenever a change compiles to a different plan. A
// reader that falls behind gets the latest plan only.
func (s *Service) Plans() <-chan *plan.Plan { return s.plans }

// Plan is the plan of the stored definitions as last compiled. The error
// says why there is none: the stored definitions have never compiled in
// this process.
func (s *Service) Plan() (*plan.Plan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plan == nil && s.planErr != nil {
		return nil, fmt.Errorf("stored definitions do not compile: %w", s.planErr)
	}
	return s.plan, nil
}

// last is the plan last compiled, nil if none; compilations keep its
// placements.
func (s *Service) last() *plan.Plan {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plan
}

// follow recompiles whenever the stored objects change.
func (s *Service) follow(ctx context.Context, rev uint64) {
	for {
		changed := s.tail.changes()
		objs, r := s.tail.state()
		if r != rev {
			rev = r
			s.recompile(objs)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// recompile compiles the stored objects and publishes the plan if it
// differs from the last one. Writes are checked before they are stored, so
// a failure here means a ferry with other checks wrote them: the running
// plan is kept and the problems logged.
func (s *Service) recompile(objs map[string]api.Object) {
	prev := s.last()
	p, aerr := s.memo.compile(objs, prev)
	s.mu.Lock()
	s.planErr = aerr
	s.mu.Unlock()
	if aerr != nil {
		s.logger.Error("stored definitions do not compile; keeping the running plan", "problems", aerr.Problems, "err", aerr.Message)
		return
	}
	if prev != nil && samePlan(prev, p) {
		return
	}
	s.mu.Lock()
	s.plan = p
	s.mu.Unlock()
	select { // keep only the latest plan for a slow reader
	case <-s.plans:
	default:
	}
	s.plans <- p
}

// refusal is the answer to a write whose result does not compile, checked
// against the plan of the objects stored before it: the published plan
// may not have caught up with the latest writes yet, and the compiler
// blames a duplicate on the declaration that plan does not run (the new
// one).
func (s *Service) refusal(before, after map[string]api.Object, aerr *api.Error) *api.Error {
	cur, err := compileObjects(before, s.last())
	if err != nil {
		return aerr
	}
	if _, again := compileObjects(after, cur); again != nil {
		return again
	}
	return aerr
}

// samePlan compares two plans without Encode, which sorts in place: a
// published plan is the runner's to read.
func samePlan(a, b *plan.Plan) bool {
	ab, err1 := json.Marshal(a)
	bb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}

// apply checks a batch and, unless it is a dry run, commits it.
func (s *Service) apply(ctx context.Context, owner string, b api.Batch) (*api.BatchResult, *api.Error) {
	return s.write(ctx, b.DryRun, owner, func(objs map[string]api.Object) (*change, *api.Error) {
		c, aerr := prepare(objs, owner, b.Ops, time.Now().UTC())
		if aerr != nil {
			return nil, aerr
		}
		if _, aerr := s.memo.compile(c.after, s.last()); aerr != nil {
			return nil, s.refusal(objs, c.after, aerr)
		}
		return c, nil
	})
}

// write commits the change that build makes of the stored objects, unless
// dryRun; owner is the writer, for the log. See the package documentation
// for how concurrent writers are serialized.
func (s *Service) write(ctx context.Context, dryRun bool, owner string, build func(map[string]api.Object) (*change, *api.Error)) (*api.BatchResult, *api.Error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var pending *change // a change whose commit ended with an error: it may have landed
	for attempt := 1; ; attempt++ {
		objs, err := s.catchUp(ctx, !dryRun)
		if err != nil {
			return nil, unavailable(err)
		}
		if pending != nil && landed(objs, pending.writes) {
			return &api.BatchResult{Results: pending.results}, nil
		}
		c, aerr := build(objs)
		if aerr != nil {
			return nil, aerr
		}
		if dryRun || len(c.writes) == 0 {
			return &api.BatchResult{Results: c.results}, nil
		}
		recs := make([]*kgo.Record, len(c.writes))
		for i, o := range c.writes {
			if recs[i], err = encode(o); err != nil {
				return nil, unavailable(err)
			}
		}
		last, err := s.w.commit(ctx, recs)
		if err != nil {
			if attempt == maxAttempts || ctx.Err() != nil {
				return nil, unavailable(err)
			}
			s.logger.Debug("definitions write retried", "attempt", attempt, "err", err)
			pending = c
			select {
			case <-ctx.Done():
			case <-time.After(backoff(attempt)):
			}
			continue
		}
		if err := s.tail.waitFor(ctx, last+1); err != nil {
			return nil, unavailable(err)
		}
		for _, r := range c.results {
			if r.Action != api.Unchanged {
				s.logger.Info("definition "+r.Action, "kind", r.Kind, "name", r.Name, "version", r.Version, "owner", owner)
			}
		}
		return &api.BatchResult{Results: c.results}, nil
	}
}

// catchUp reads the stored definitions up to everything written before
// the call and returns them. With take, this executor first takes the
// writer ID, so nobody commits unseen changes before its own commit.
func (s *Service) catchUp(ctx context.Context, take bool) (map[string]api.Object, error) {
	if take {
		if err := s.w.take(ctx); err != nil {
			return nil, err
		}
	}
	end, err := endOffset(ctx, s.adm)
	if err != nil {
		return nil, err
	}
	if err := s.tail.waitFor(ctx, end); err != nil {
		return nil, err
	}
	objs, _ := s.tail.state()
	return objs, nil
}

// landed reports whether the writes are exactly what is stored: a commit
// that answered with an error but went through.
func landed(objs map[string]api.Object, writes []api.Object) bool {
	for _, w := range writes {
		cur, ok := objs[api.Key(w.Kind, w.Name)]
		if w.Spec == nil {
			if ok {
				return false
			}
			continue
		}
		if !ok || cur.Version != w.Version || cur.Owner != w.Owner || !cur.Updated.Equal(w.Updated) || !bytes.Equal(cur.Spec, w.Spec) {
			return false
		}
	}
	return true
}

// object returns a stored object, reading up to everything written before
// the call.
func (s *Service) object(ctx context.Context, kind api.Kind, name string) (api.Object, *api.Error) {
	objs, err := s.catchUp(ctx, false)
	if err != nil {
		return api.Object{}, unavailable(err)
	}
	o, ok := objs[api.Key(kind, name)]
	if !ok {
		return o, api.Errorf(http.StatusNotFound, "%s does not exist", api.Describe(kind, name))
	}
	return o, nil
}

// objects lists the stored objects that keep says to, in api.Kinds order.
func (s *Service) objects(ctx context.Context, keep func(api.Object) bool) ([]api.Object, *api.Error) {
	objs, err := s.catchUp(ctx, false)
	if err != nil {
		return nil, unavailable(err)
	}
	out := slices.DeleteFunc(sorted(objs), func(o api.Object) bool { return !keep(o) })
	if out == nil {
		out = []api.Object{} // a list answers [], never null
	}
	return out, nil
}

func unavailable(err error) *api.Error {
	return api.Errorf(http.StatusServiceUnavailable, "stored definitions (%s in the home datacenter): %v", systopics.Definitions, err)
}
