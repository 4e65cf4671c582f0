// Package offsets moves consumer groups between datacenters: it translates
// a group's committed offsets in one datacenter into offsets of the same
// topics in another, exactly, from the origin headers mirroring writes
// (ferry.origin and ferry.origin.offset), and commits them there. It also
// holds the job kind that keeps inactive groups' offsets translated.
//
// The guarantee: a consumer of the group that starts in the target at the
// translated offsets reads every record the group had not consumed in the
// source (records first written to the source, to the target, or to a
// third datacenter alike), and re-reads as few records as that allows.
// docs/failover.md explains the algorithm with an
// example.
package offsets

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Option configures a Translator.
type Option func(*Translator)

// WithFetchBytes bounds each read of a partition, between 1 KiB and 64
// MiB. Default: 1 MiB. Smaller reads make the binary searches cheaper on
// partitions of small records, larger ones make long scans cheaper.
func WithFetchBytes(n int32) Option {
	return func(t *Translator) { t.fetchBytes = min(max(n, 1<<10), 64<<20) }
}

// parallel is how many partitions a Translator translates at once.
const parallel = 8

// Translator translates offsets from one datacenter to another.
type Translator struct {
	from, to   *datacenter
	fetchBytes int32
}

// New connects to the source datacenter from and the target datacenter to.
func New(from string, fromOpts []kgo.Opt, to string, toOpts []kgo.Opt, opts ...Option) (*Translator, error) {
	if from == to {
		return nil, fmt.Errorf("cannot translate offsets from %s to itself: name two datacenters", from)
	}
	t := &Translator{fetchBytes: 1 << 20}
	for _, o := range opts {
		o(t)
	}
	var err error
	if t.from, err = newDatacenter(from, fromOpts); err != nil {
		return nil, err
	}
	if t.to, err = newDatacenter(to, toOpts); err != nil {
		t.from.cl.Close()
		return nil, err
	}
	return t, nil
}

// Close closes the clients.
func (t *Translator) Close() {
	t.from.cl.Close()
	t.to.cl.Close()
}

// Topic is a mirrored topic and the datacenters it is mirrored between:
// the origins its records can have.
type Topic struct {
	Name        string
	Datacenters []string
}

// Partition is the translation of one partition.
type Partition struct {
	Topic     string
	Partition int32
	// Source is the group's committed offset in the source datacenter, -1
	// when it has none (the partition is then not translated).
	Source int64
	// Target is the offset to commit in the target datacenter, -1 when not
	// translated.
	Target int64
	// Rereads is how many records the group will read again in the target:
	// records at or after Target it had consumed in the source, counting
	// those still to be mirrored into the target, which arrive after it.
	// When Note reports retention, it is a lower bound.
	Rereads int64
	// Pending is how many of Rereads are still to be mirrored.
	Pending int64
	// Note says why a partition was not translated, or how retention made
	// the translation less exact (a target earlier than needed, re-reads
	// that are estimates).
	Note string
	// Read is how many records translation read, in both datacenters.
	Read int64
}

// Translated reports whether the partition has a target offset.
func (p Partition) Translated() bool { return p.Target >= 0 }

// Translate translates committed offsets of the source (topic, partition,
// offset) to the target. Every partition of the topics is reported, those
// without a committed offset as not translated: a consumer of the group in
// the target starts there as its auto.offset.reset says, as it would have
// in the source.
func (t *Translator) Translate(ctx context.Context, topics []Topic, committed map[string]map[int32]int64) ([]Partition, error) {
	type work struct {
		topic Topic
		part  int32
		c     int64
		src   [2]int64
		dst   [2]int64
	}
	var todo []work
	var out []Partition
	for _, tp := range topics {
		if !slices.Contains(tp.Datacenters, t.from.name) || !slices.Contains(tp.Datacenters, t.to.name) {
			return nil, fmt.Errorf("topic %s is not mirrored between %s and %s (it is between %v)", tp.Name, t.from.name, t.to.name, tp.Datacenters)
		}
		src, err := t.from.bounds(ctx, tp.Name)
		if err != nil {
			return nil, err
		}
		dst, err := t.to.bounds(ctx, tp.Name)
		if err != nil {
			return nil, err
		}
		for p := range src {
			c, ok := committed[tp.Name][p]
			switch _, there := dst[p]; {
			case !there:
				return nil, fmt.Errorf("topic %s has partition %d in %s but not in %s: the partition counts differ", tp.Name, p, t.from.name, t.to.name)
			case !ok || c < 0:
				out = append(out, Partition{Topic: tp.Name, Partition: p, Source: -1, Target: -1,
					Note: fmt.Sprintf("no committed offset in %s: not translated", t.from.name)})
			default:
				todo = append(todo, work{topic: tp, part: p, c: c, src: src[p], dst: dst[p]})
			}
		}
	}
	results := make([]Partition, len(todo))
	errs := make([]error, len(todo))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, w := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i], errs[i] = t.partition(ctx, w.topic, w.part, w.c, w.src, w.dst)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	out = append(out, results...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out, nil
}

func (t *Translator) log(d *datacenter, tp Topic, p int32, bounds [2]int64) *partLog {
	origins := map[string]bool{}
	for _, dc := range tp.Datacenters {
		origins[dc] = true
	}
	return &partLog{dc: d, topic: tp.Name, part: p, origins: origins, start: bounds[0], end: bounds[1], maxBytes: t.fetchBytes}
}

// partition translates committed offset c of one partition. Writing A for
// the source and B for the target:
//
//  1. What the group consumed in A is A's records before c. Per origin X
//     that is a prefix of X's records: those with seq <= th[X], where
//     th[A] = c-1 and, for the other origins, th[X] is the seq of X's last
//     record in A before c (found reading A backwards from c).
//  2. In B, the first record of X with seq > th[X] is where X's unconsumed
//     records begin (B's own records: the first at or after th[B]+1; the
//     others: binary search over B). The target is the earliest of these,
//     or B's end when all of them are still to come.
//  3. Re-reads are the consumed records at or after the target, counted in
//     B, plus the consumed records of A not mirrored into B yet: they will
//     be appended after the target.
func (t *Translator) partition(ctx context.Context, tp Topic, p int32, c int64, srcBounds, dstBounds [2]int64) (Partition, error) {
	src, dst := t.log(t.from, tp, p, srcBounds), t.log(t.to, tp, p, dstBounds)
	res := Partition{Topic: tp.Name, Partition: p, Source: c}

	others := slices.DeleteFunc(slices.Clone(tp.Datacenters), func(dc string) bool { return dc == t.from.name })
	last, err := src.lastBefore(ctx, c, others)
	if err != nil {
		return res, err
	}
	th := map[string]int64{t.from.name: c - 1}
	for _, o := range others {
		seq, ok := last[o]
		if !ok {
			seq = -1
		}
		th[o] = seq
	}
	switch {
	case c < src.start:
		res.Note = fmt.Sprintf("the committed offset is before %s's log start %d: retention removed records the group never read", t.from.name, src.start)
	case src.start > 0 && len(last) < len(others):
		res.Note = fmt.Sprintf("retention removed %s's records before offset %d: the target may be earlier than needed", t.from.name, src.start)
	}

	first := map[string]located{}
	target, upto := dst.end, dst.start
	for _, o := range tp.Datacenters {
		loc, err := dst.firstAbove(ctx, o, th[o])
		if err != nil {
			return res, err
		}
		first[o] = loc
		target, upto = min(target, loc.at), max(upto, loc.at)
	}
	res.Target = target
	consumed := func(e entry) bool { return e.seq <= th[e.origin] }
	if res.Rereads, err = dst.count(ctx, target, upto, consumed); err != nil {
		return res, err
	}

	// Origins whose unconsumed records have not reached B yet may also have
	// consumed records on their way: those after the last one B holds.
	for _, o := range tp.Datacenters {
		if o == t.to.name || first[o].at < dst.end {
			continue
		}
		n, err := pending(ctx, src, o, first[o].prev, c)
		if err != nil {
			return res, err
		}
		res.Pending += n
		if n > 0 && first[o].prev < 0 && dst.start > 0 && res.Note == "" {
			res.Note = fmt.Sprintf("retention removed %s's records before offset %d: some records counted on their way may be gone", t.to.name, dst.start)
		}
	}
	res.Rereads += res.Pending
	res.Read = src.records + dst.records
	return res, nil
}

// pending counts the records of origin in A before c whose seq is above
// prev, the last one B holds: consumed, and on their way to B.
func pending(ctx context.Context, src *partLog, origin string, prev, c int64) (int64, error) {
	loc, err := src.firstAbove(ctx, origin, prev)
	if err != nil || loc.at >= c {
		return 0, err
	}
	return src.count(ctx, loc.at, c, func(e entry) bool { return e.origin == origin })
}
