package control

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// tail holds the latest state of ferry.definitions: it reads the topic's
// one partition from the start and then follows it, read_committed, so
// every executor holds every committed object and sees a change within a
// fetch of its commit.
type tail struct {
	cl     *kgo.Client
	logger *slog.Logger

	mu      sync.Mutex
	objects map[string]api.Object // by api.Key
	next    int64                 // offset after the last record read, control records included
	rev     uint64                // bumped whenever objects change
	moved   chan struct{}         // closed, and replaced, whenever next moves
}

func newTail(opts []kgo.Opt, logger *slog.Logger) (*tail, error) {
	cl, err := kgo.NewClient(append(slices.Clone(opts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			systopics.Definitions: {0: kgo.NewOffset().AtStart()},
		}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Every transaction ends with a control record, so the offset after
		// the last one read reaches the high watermark once all is read.
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, err
	}
	return &tail{cl: cl, logger: logger, objects: map[string]api.Object{}, moved: make(chan struct{})}, nil
}

// run follows the topic until ctx ends.
func (t *tail) run(ctx context.Context) {
	for {
		fetches := t.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			t.logger.Warn("reading stored definitions", "topic", topic, "partition", p, "err", err)
		})
		t.mu.Lock()
		moved := false
		fetches.EachRecord(func(r *kgo.Record) {
			t.apply(r)
			moved = true
		})
		if moved {
			close(t.moved)
			t.moved = make(chan struct{})
		}
		t.mu.Unlock()
	}
}

// apply takes one record into the state; t.mu is held.
func (t *tail) apply(r *kgo.Record) {
	t.next = r.Offset + 1
	if r.Attrs.IsControl() {
		return
	}
	o, deleted, err := decode(r)
	if err != nil {
		t.logger.Error("skipping unreadable stored definition", "err", err)
		return
	}
	key := api.Key(o.Kind, o.Name)
	if deleted {
		delete(t.objects, key)
	} else {
		t.objects[key] = o
	}
	t.rev++
}

// waitFor returns once every record before offset has been read.
func (t *tail) waitFor(ctx context.Context, offset int64) error {
	for {
		t.mu.Lock()
		next, moved := t.next, t.moved
		t.mu.Unlock()
		if next >= offset {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-moved:
		}
	}
}

// state returns a copy of the objects and their revision.
func (t *tail) state() (map[string]api.Object, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.objects), t.rev
}

// changes is closed when the next records are read.
func (t *tail) changes() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.moved
}

func (t *tail) close() { t.cl.Close() }

// sorted lists objects in api.Kinds order, by name within a kind.
func sorted(objs map[string]api.Object) []api.Object {
	out := slices.Collect(maps.Values(objs))
	slices.SortFunc(out, func(a, b api.Object) int {
		if a.Kind != b.Kind {
			return slices.Index(api.Kinds, a.Kind) - slices.Index(api.Kinds, b.Kind)
		}
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}
