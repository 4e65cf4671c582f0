package compiler

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-pipelines/ferry/schema"
)

// TestWithShared: a directory that declares only mirrors compiles with
// the datacenters and shard others declare; its own declaration of a
// shared object replaces theirs; the definitions returned are the
// directory's, the plan is the whole's.
func TestWithShared(t *testing.T) {
	dir := t.TempDir()
	src := `package pipelines

shards: small: {tiers: [2], maxJobs: 10}

mirrors: {
	"orders.events": {partitions: 2, tier: 2, shard: "shared"}
	"audit.log": {partitions: 1, tier: 2, shard: "small"}
}
`
	if err := os.WriteFile(filepath.Join(dir, "pipelines.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	shared := &schema.Definitions{
		Datacenters: map[string]schema.Datacenter{
			"dc1": {Kafka: schema.Kafka{Brokers: []string{"127.0.0.1:19092"}}},
			"dc2": {Kafka: schema.Kafka{Brokers: []string{"127.0.0.1:29092"}}},
		},
		Shards: map[string]schema.Shard{
			"shared": {Tiers: []int{1, 2}},
			"small":  {Tiers: []int{1}}, // the directory's own small replaces it
		},
		Mirrors: map[string]schema.Mirror{"team.events": {Partitions: 1, Tier: 1}},
	}
	p, defs, err := CompileDir(dir, WithShared(shared))
	if err != nil {
		t.Fatal(err)
	}
	var jobs []string
	for _, j := range p.Jobs {
		jobs = append(jobs, j.ID+" on "+j.Shard)
	}
	sort.Strings(jobs)
	want := []string{
		"mirror:audit.log:dc1-dc2 on small", "mirror:audit.log:dc2-dc1 on small",
		"mirror:orders.events:dc1-dc2 on shared", "mirror:orders.events:dc2-dc1 on shared",
		"mirror:team.events:dc1-dc2 on shared", "mirror:team.events:dc2-dc1 on shared",
	}
	if diff := cmp.Diff(want, jobs); diff != "" {
		t.Errorf("plan jobs (-want +got):\n%s", diff)
	}
	if len(defs.Datacenters) != 0 || len(defs.Shards) != 1 || defs.Shards["small"].Tiers[0] != 2 || len(defs.Mirrors) != 2 {
		t.Errorf("own definitions: %d datacenters, shards %v, %d mirrors; want none, small (tier 2), 2", len(defs.Datacenters), defs.Shards, len(defs.Mirrors))
	}
	if _, _, err := CompileDir(dir); err == nil {
		t.Error("the directory alone compiled, without datacenters")
	}
}
