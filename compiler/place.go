package compiler

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/schema"
)

// DefaultShard is where every job runs when a definition set declares no
// shards: one shard that takes every tier.
const DefaultShard = "default"

// loadFactor bounds a shard's weight at this multiple of its fair share
// while new jobs are placed (rendezvous hashing with bounded load).
const loadFactor = 1.25

// placer is the sixth stage: it puts every job on a shard. The order of
// preference is
//
//  1. the shard the definition pins (its tier must be accepted);
//  2. the job's shard in the previous plan, if that shard still exists,
//     accepts the tier and has room: existing jobs never move because
//     others were added or removed;
//  3. among the shards that accept the tier, the first by rendezvous hash of
//     (job, shard) whose weight stays within 1.25 times its fair share and
//     within maxJobs and maxWeight; else the least loaded one with room.
//
// A shard's fair share is, over the tiers it accepts, the weight of the
// unpinned jobs of that tier divided by the number of shards that accept it.
type placer struct {
	c      *checker
	shards map[string]schema.Shard
	names  []string
	jobs   map[string]int // shard -> jobs placed
	weight map[string]int // shard -> weight placed
	bound  map[string]float64
}

func place(c *checker, defs *schema.Definitions, pend []*pending, prev *plan.Plan) map[string]schema.Shard {
	shards := defs.Shards
	if len(shards) != len(c.d.declared["shards"]) {
		return nil // a shard has schema errors: placing around it would only add noise
	}
	if len(c.d.declared["shards"]) == 0 {
		shards = map[string]schema.Shard{DefaultShard: {Tiers: []int{1, 2, 3, 4}}}
	}
	p := &placer{c: c, shards: shards, names: slices.Sorted(maps.Keys(shards)), jobs: map[string]int{}, weight: map[string]int{}}
	var rest []*pending
	for _, j := range pend {
		if j.pinned == "" {
			rest = append(rest, j)
			continue
		}
		sh, ok := shards[j.pinned]
		switch {
		case !ok: // unknown shard: reported by the checks
		case !sh.Accepts(j.job.Tier):
			c.errorf(j.shardPath(), "shard %q does not accept tier %d%s (it accepts tiers %s)", j.pinned, j.job.Tier, j.tierNote(), tierList(sh.Tiers))
		default:
			p.put(j, j.pinned)
		}
	}
	for _, name := range p.names {
		sh := shards[name]
		if sh.MaxJobs > 0 && p.jobs[name] > sh.MaxJobs {
			c.errorf(path("shards", name, "maxJobs"), "%d jobs are pinned to shard %q, more than its maxJobs %d: raise maxJobs or pin fewer jobs there", p.jobs[name], name, sh.MaxJobs)
		}
		if sh.MaxWeight > 0 && p.weight[name] > sh.MaxWeight {
			c.errorf(path("shards", name, "maxWeight"), "jobs pinned to shard %q weigh %d, more than its maxWeight %d: raise maxWeight or pin fewer jobs there", name, p.weight[name], sh.MaxWeight)
		}
	}
	p.bounds(rest)
	prevShard := map[string]string{} // by job ID; a plan's jobs may come in any order
	if prev != nil {
		for _, j := range prev.Jobs {
			prevShard[j.ID] = j.Shard
		}
	}
	var fresh []*pending
	for _, j := range rest {
		if old, ok := prevShard[j.job.ID]; ok {
			if sh, ok := shards[old]; ok && sh.Accepts(j.job.Tier) && p.room(old, j.job.Weight) {
				p.put(j, old)
				continue
			}
		}
		fresh = append(fresh, j)
	}
	for _, j := range fresh {
		p.placeNew(j)
	}
	return shards
}

// bounds computes each shard's bounded load: 1.25 times its fair share of
// the unpinned jobs' weight. A shard's whole weight, pinned jobs included,
// is held to it, so a shard loaded by pins takes fewer unpinned jobs.
func (p *placer) bounds(rest []*pending) {
	tierWeight := map[int]int{}
	for _, j := range rest {
		tierWeight[j.job.Tier] += j.job.Weight
	}
	eligible := map[int]int{}
	for _, name := range p.names {
		for _, t := range uniqueTiers(p.shards[name].Tiers) {
			eligible[t]++
		}
	}
	p.bound = map[string]float64{}
	for _, name := range p.names {
		share := 0.0
		for _, t := range uniqueTiers(p.shards[name].Tiers) {
			share += float64(tierWeight[t]) / float64(eligible[t])
		}
		p.bound[name] = math.Ceil(loadFactor * share)
	}
}

func (p *placer) placeNew(j *pending) {
	var candidates []string
	for _, name := range p.names {
		if p.shards[name].Accepts(j.job.Tier) {
			candidates = append(candidates, name)
		}
	}
	if len(candidates) == 0 {
		p.c.errorf(j.tierPath(), "no shard accepts tier %d (%s): add %d to a shard's tiers", j.job.Tier, p.describe(), j.job.Tier)
		return
	}
	scores := make(map[string]uint64, len(candidates))
	for _, name := range candidates {
		scores[name] = score(j.job.ID, name)
	}
	sort.SliceStable(candidates, func(a, b int) bool { return scores[candidates[a]] > scores[candidates[b]] })
	for _, name := range candidates {
		if p.room(name, j.job.Weight) && float64(p.weight[name]+j.job.Weight) <= math.Max(p.bound[name], float64(j.job.Weight)) {
			p.put(j, name)
			return
		}
	}
	best := ""
	for _, name := range candidates {
		if p.room(name, j.job.Weight) && (best == "" || p.weight[name] < p.weight[best]) {
			best = name
		}
	}
	if best == "" {
		p.c.errorf(j.tierPath(), "no shard has room for job %s: every shard that accepts tier %d is full (%s): raise their maxJobs or maxWeight, or add a shard for tier %d", j.job.ID, j.job.Tier, p.capacities(candidates), j.job.Tier)
		return
	}
	p.put(j, best)
}

func (p *placer) put(j *pending, shard string) {
	j.job.Shard = shard
	p.jobs[shard]++
	p.weight[shard] += j.job.Weight
}

// room reports whether the shard can take one more job of the weight.
func (p *placer) room(shard string, weight int) bool {
	sh := p.shards[shard]
	if sh.MaxJobs > 0 && p.jobs[shard]+1 > sh.MaxJobs {
		return false
	}
	return sh.MaxWeight == 0 || p.weight[shard]+weight <= sh.MaxWeight
}

func (p *placer) describe() string {
	parts := make([]string, len(p.names))
	for i, name := range p.names {
		parts[i] = fmt.Sprintf("%s takes tiers %s", name, tierList(p.shards[name].Tiers))
	}
	return strings.Join(parts, "; ")
}

// capacities describes the load of the shards, in name order, against the
// limits they set.
func (p *placer) capacities(names []string) string {
	names = slices.Sorted(slices.Values(names))
	parts := make([]string, len(names))
	for i, name := range names {
		sh := p.shards[name]
		parts[i] = fmt.Sprintf("%s: %d jobs", name, p.jobs[name])
		if sh.MaxJobs > 0 {
			parts[i] += fmt.Sprintf(" of maxJobs %d", sh.MaxJobs)
		}
		if sh.MaxWeight > 0 {
			parts[i] += fmt.Sprintf(", weight %d of maxWeight %d", p.weight[name], sh.MaxWeight)
		}
	}
	return strings.Join(parts, "; ")
}

// score is the rendezvous hash of a job on a shard.
func score(job, shard string) uint64 {
	x := fnv64a(fnv64a(fnv64a(fnvOffset, job), "\x00"), shard)
	// A splitmix64 finaliser spreads FNV's weak low bits.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// FNV-1a, 64 bits, as hash/fnv computes it, without its allocation: score
// runs for every job and shard.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv64a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func uniqueTiers(tiers []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, t := range tiers {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

func tierList(tiers []int) string {
	parts := make([]string, len(tiers))
	for i, t := range tiers {
		parts[i] = fmt.Sprint(t)
	}
	return strings.Join(parts, ", ")
}
