package compiler_test

import (
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/schema"
)

// The placement properties hold for any definitions, so they are checked
// over random job and shard sets (fixed seeds, so a failure reproduces):
// every job is placed, limits hold, tiers stay isolated, pins are kept, and
// with the previous plan adding or removing a job moves no other job.
const placementSeeds = 200

// randomDefinitions builds a definition set of 1 to 5 shards with random
// tiers and limits, 5 to 40 mirrors and 0 to 6 CDC sources. Limits leave
// room for every job (so a failure to place is the placer's), yet are tight
// enough to bind on some seeds.
func randomDefinitions(r *rand.Rand) *schema.Definitions {
	defs := &schema.Definitions{
		Datacenters: map[string]schema.Datacenter{
			"dc1": {Kafka: schema.Kafka{Brokers: []string{"k1:9092"}}},
			"dc2": {Kafka: schema.Kafka{Brokers: []string{"k2:9092"}}},
		},
		Shards:  map[string]schema.Shard{},
		Mirrors: map[string]schema.Mirror{},
		CDC:     map[string]schema.CDCSource{},
	}
	nShards := 1 + r.Intn(5)
	names := make([]string, nShards)
	tierShards := map[int][]string{}
	for i := range names {
		names[i] = fmt.Sprintf("s%d", i)
		var tiers []int
		for t := 1; t <= 4; t++ {
			if r.Intn(2) == 0 {
				tiers = append(tiers, t)
			}
		}
		if len(tiers) == 0 {
			tiers = []int{1 + r.Intn(4)}
		}
		defs.Shards[names[i]] = schema.Shard{Tiers: tiers}
	}
	for t := 1; t <= 4; t++ { // every tier has a shard
		name := names[r.Intn(nShards)]
		sh := defs.Shards[name]
		if !sh.Accepts(t) {
			sh.Tiers = append(sh.Tiers, t)
			defs.Shards[name] = sh
		}
		for _, n := range names {
			if defs.Shards[n].Accepts(t) {
				tierShards[t] = append(tierShards[t], n)
			}
		}
	}
	pin := func(tier int) string {
		if r.Intn(10) > 0 {
			return ""
		}
		s := tierShards[tier]
		return s[r.Intn(len(s))]
	}
	for i, n := 0, 5+r.Intn(36); i < n; i++ {
		tier := 1 + r.Intn(4)
		defs.Mirrors[fmt.Sprintf("topic%02d", i)] = schema.Mirror{Partitions: 1 + r.Intn(12), Tier: tier, Shard: pin(tier)}
	}
	for i, n := 0, r.Intn(7); i < n; i++ {
		src := schema.CDCSource{
			MySQL:       schema.MySQL{Address: "db:3306", User: "ferry", Password: schema.Secret{Env: "P"}, ServerID: uint32(100 + i)},
			Datacenter:  "dc1",
			TopicPrefix: fmt.Sprintf("src%d", i),
			Tables:      map[string]schema.CDCTable{},
		}
		minTier := 4
		for j, m := 0, 1+r.Intn(5); j < m; j++ {
			tier := 1 + r.Intn(4)
			minTier = min(minTier, tier)
			src.Tables[fmt.Sprintf("db.t%d", j)] = schema.CDCTable{Tier: tier, Rate: r.Intn(3000)}
		}
		src.Shard = pin(minTier)
		defs.CDC[fmt.Sprintf("source%d", i)] = src
	}
	setLimits(r, defs)
	return defs
}

// setLimits gives two thirds of the shards a maxJobs, and half of those a
// maxWeight, of what the shard holds without limits plus a slack of 0 to 2
// jobs or 0 to 5 weight. Such limits always leave room (the placer makes
// the same choices while no limit refuses it) and are often reached.
func setLimits(r *rand.Rand, defs *schema.Definitions) {
	p, err := compiler.CompileDefinitions(defs)
	if err != nil {
		panic(err) // the definitions have no limits yet: nothing may fail
	}
	jobs, weight := map[string]int{}, map[string]int{}
	for _, j := range p.Jobs {
		jobs[j.Shard]++
		weight[j.Shard] += j.Weight
	}
	for _, name := range slices.Sorted(maps.Keys(defs.Shards)) {
		if r.Intn(3) == 0 || jobs[name] == 0 {
			continue
		}
		sh := defs.Shards[name]
		sh.MaxJobs = jobs[name] + r.Intn(3)
		if r.Intn(2) == 0 {
			sh.MaxWeight = weight[name] + r.Intn(6)
		}
		defs.Shards[name] = sh
	}
}

// checkPlacement asserts the invariants of one compiled plan.
func checkPlacement(t *testing.T, defs *schema.Definitions, p *plan.Plan) {
	t.Helper()
	want := 0
	for _, m := range defs.Mirrors {
		want += len(m.Datacenters)
		if m.Datacenters == nil {
			want += len(defs.Datacenters) * (len(defs.Datacenters) - 1)
		}
	}
	want += len(defs.CDC)
	if len(p.Jobs) != want {
		t.Errorf("plan has %d jobs, definitions give %d", len(p.Jobs), want)
	}
	jobs, weight := map[string]int{}, map[string]int{}
	for _, j := range p.Jobs {
		sh, ok := defs.Shards[j.Shard]
		if !ok {
			t.Errorf("%s is on shard %q, which is not declared", j.ID, j.Shard)
			continue
		}
		if !sh.Accepts(j.Tier) {
			t.Errorf("%s (tier %d) is on shard %s, which takes tiers %v", j.ID, j.Tier, j.Shard, sh.Tiers)
		}
		if pinned := pinOf(defs, j); pinned != "" && pinned != j.Shard {
			t.Errorf("%s is pinned to %s but placed on %s", j.ID, pinned, j.Shard)
		}
		jobs[j.Shard]++
		weight[j.Shard] += j.Weight
	}
	for name, sh := range defs.Shards {
		if sh.MaxJobs > 0 && jobs[name] > sh.MaxJobs {
			t.Errorf("shard %s holds %d jobs, maxJobs %d", name, jobs[name], sh.MaxJobs)
		}
		if sh.MaxWeight > 0 && weight[name] > sh.MaxWeight {
			t.Errorf("shard %s weighs %d, maxWeight %d", name, weight[name], sh.MaxWeight)
		}
	}
}

// pinOf returns the shard a job's definition pins, or "".
func pinOf(defs *schema.Definitions, j plan.Job) string {
	if j.Mirror != nil {
		return defs.Mirrors[j.Mirror.Topic].Shard
	}
	return defs.CDC[j.CDC.Source].Shard
}

// moved lists the jobs of old that are on another shard in new.
func moved(old, new *plan.Plan) []string {
	var out []string
	for _, j := range old.Jobs {
		if nj := new.Job(j.ID); nj != nil && nj.Shard != j.Shard {
			out = append(out, fmt.Sprintf("%s: %s -> %s", j.ID, j.Shard, nj.Shard))
		}
	}
	return out
}

// TestPlacementProperties checks the invariants over random definitions,
// then that with the previous plan adding an unpinned mirror or removing a
// job moves no other job.
func TestPlacementProperties(t *testing.T) {
	bound := 0 // seeds where a limit is reached exactly: the limits bite
	grew := 0  // seeds where the added mirror found room
	for seed := int64(1); seed <= placementSeeds; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewSource(seed))
			defs := randomDefinitions(r)
			base, err := compiler.CompileDefinitions(defs)
			if err != nil {
				t.Fatalf("placing %d mirrors and %d sources on %d shards: %v", len(defs.Mirrors), len(defs.CDC), len(defs.Shards), err)
			}
			checkPlacement(t, defs, base)
			if atLimit(defs, base) {
				bound++
			}

			tier := 1 + r.Intn(4)
			defs.Mirrors["added.topic"] = schema.Mirror{Partitions: 1, Tier: tier}
			grown, err := compiler.CompileDefinitions(defs, compiler.WithPrevious(base))
			delete(defs.Mirrors, "added.topic")
			switch {
			case err != nil && !strings.Contains(err.Error(), "no shard has room"):
				t.Fatalf("adding a tier-%d mirror: %v", tier, err)
			case err == nil:
				grew++
				checkPlacement(t, defs, withoutTopic(grown, "added.topic"))
				if m := moved(base, grown); len(m) > 0 {
					t.Errorf("adding a mirror moved %d jobs: %s", len(m), strings.Join(m, "; "))
				}
			}

			victim := base.Jobs[r.Intn(len(base.Jobs))]
			removeDefinition(defs, victim)
			shrunk, err := compiler.CompileDefinitions(defs, compiler.WithPrevious(base))
			if err != nil {
				t.Fatalf("removing %s: %v", victim.ID, err)
			}
			checkPlacement(t, defs, shrunk)
			if m := moved(base, shrunk); len(m) > 0 {
				t.Errorf("removing %s moved %d jobs: %s", victim.ID, len(m), strings.Join(m, "; "))
			}
		})
	}
	if bound < placementSeeds/4 || grew < placementSeeds/4 {
		t.Errorf("of %d seeds, %d fill a shard to a limit and %d have room for one more mirror: the generator no longer tests both", placementSeeds, bound, grew)
	}
}

// atLimit reports whether some shard holds exactly its maxJobs or maxWeight.
func atLimit(defs *schema.Definitions, p *plan.Plan) bool {
	jobs, weight := map[string]int{}, map[string]int{}
	for _, j := range p.Jobs {
		jobs[j.Shard]++
		weight[j.Shard] += j.Weight
	}
	for name, sh := range defs.Shards {
		if jobs[name] == sh.MaxJobs || weight[name] == sh.MaxWeight {
			return true
		}
	}
	return false
}

// withoutTopic is the plan without the jobs of one mirror topic, so that
// the invariants can be checked against definitions that lack it.
func withoutTopic(p *plan.Plan, topic string) *plan.Plan {
	out := *p
	out.Jobs = nil
	for _, j := range p.Jobs {
		if j.Mirror == nil || j.Mirror.Topic != topic {
			out.Jobs = append(out.Jobs, j)
		}
	}
	return &out
}

// removeDefinition deletes the definition a job comes from: for a mirror
// both its directions go.
func removeDefinition(defs *schema.Definitions, j plan.Job) {
	if j.Mirror != nil {
		delete(defs.Mirrors, j.Mirror.Topic)
		return
	}
	delete(defs.CDC, j.CDC.Source)
}

// TestPreviousPlacement pins down when a job keeps its shard from the
// previous plan: only while that shard exists, takes the job's tier, has
// room and no pin says otherwise.
func TestPreviousPlacement(t *testing.T) {
	shards := map[string]schema.Shard{
		"one":  {Tiers: []int{1, 2}},
		"two":  {Tiers: []int{1, 2}},
		"slow": {Tiers: []int{3, 4}},
	}
	// where the hash puts mirror:m:dc1-dc2 without a previous plan
	fresh := func(t *testing.T, m schema.Mirror) string {
		p, err := compiler.CompileDefinitions(mirrorDefs(shards, m))
		if err != nil {
			t.Fatal(err)
		}
		return p.Job("mirror:m:dc1-dc2").Shard
	}
	other := map[string]string{"one": "two", "two": "one"}
	tests := []struct {
		name     string
		mirror   schema.Mirror
		limits   map[string]schema.Shard // replaces shards of the same name
		previous func(hash string) string
		want     func(hash string) string
	}{
		{
			name:     "kept where the hash would put it elsewhere",
			mirror:   schema.Mirror{Partitions: 1, Tier: 2},
			previous: func(hash string) string { return other[hash] },
			want:     func(hash string) string { return other[hash] },
		},
		{
			name:     "moved off a shard that no longer takes its tier",
			mirror:   schema.Mirror{Partitions: 1, Tier: 2},
			previous: func(string) string { return "slow" },
			want:     func(hash string) string { return hash },
		},
		{
			name:     "placed afresh when its shard is gone",
			mirror:   schema.Mirror{Partitions: 1, Tier: 2},
			previous: func(string) string { return "retired" },
			want:     func(hash string) string { return hash },
		},
		{
			name:     "a pin wins over the previous shard",
			mirror:   schema.Mirror{Partitions: 1, Tier: 2, Shard: "one"},
			previous: func(string) string { return "two" },
			want:     func(string) string { return "one" },
		},
		{
			name:     "moved off a shard without room",
			mirror:   schema.Mirror{Partitions: 5, Tier: 2},
			limits:   map[string]schema.Shard{"one": {Tiers: []int{1, 2}, MaxWeight: 4}},
			previous: func(string) string { return "one" },
			want:     func(string) string { return "two" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash := fresh(t, tt.mirror)
			defs := mirrorDefs(shards, tt.mirror)
			maps.Copy(defs.Shards, tt.limits)
			prev := &plan.Plan{Version: plan.Version, Jobs: []plan.Job{{ID: "mirror:m:dc1-dc2", Shard: tt.previous(hash)}}}
			p, err := compiler.CompileDefinitions(defs, compiler.WithPrevious(prev))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := p.Job("mirror:m:dc1-dc2").Shard, tt.want(hash); got != want {
				t.Errorf("placed on %s, want %s (the hash alone gives %s, the previous plan %s)", got, want, hash, tt.previous(hash))
			}
		})
	}
}

// mirrorDefs is two datacenters, the shards and one mirror "m".
func mirrorDefs(shards map[string]schema.Shard, m schema.Mirror) *schema.Definitions {
	return &schema.Definitions{
		Datacenters: map[string]schema.Datacenter{
			"dc1": {Kafka: schema.Kafka{Brokers: []string{"k1:9092"}}},
			"dc2": {Kafka: schema.Kafka{Brokers: []string{"k2:9092"}}},
		},
		Shards:  maps.Clone(shards),
		Mirrors: map[string]schema.Mirror{"m": m},
	}
}
