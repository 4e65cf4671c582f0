package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/control/api"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestApplyAndRunHome: two `ferry run --home` executors share definitions
// stored in dc1; `ferry apply` through one is run by the other, updates
// and deletions included, and an object Terraform owns is refused by name.
func TestApplyAndRunHome(t *testing.T) {
	pair := devtest.Pair(t)
	home := "dc1=" + pair.DC1.Addr()
	pa, pb := startFerry(t, "", nil, "run", "--home", home), startFerry(t, "", nil, "run", "--home", home)
	a, b := pa.addr, pb.addr

	dir := filepath.Join(t.TempDir(), "pipelines")
	writeDefs(t, dir, pair, `"orders.events": {partitions: 3, tier: 1}
	"audit.log": {partitions: 2, tier: 4}`)
	ferry(t, repoRoot, "apply", dir, "--http", a).want(t, 0, ptr(fmt.Sprintf(`+ datacenter dc1
+ datacenter dc2
+ mirror audit.log
+ mirror orders.events
applied %s as cue:pipelines: 4 created, 0 updated, 0 deleted, 0 unchanged
`, dir)), ptr(""))
	pb.waitJobs(t, "mirror:audit.log:dc1-dc2 mirror:audit.log:dc2-dc1 mirror:orders.events:dc1-dc2 mirror:orders.events:dc2-dc1")

	writeDefs(t, dir, pair, `"audit.log": {partitions: 2, tier: 3}`)
	ferry(t, repoRoot, "apply", dir, "--http", b).want(t, 0, ptr(fmt.Sprintf(`~ mirror audit.log
- mirror orders.events
applied %s as cue:pipelines: 0 created, 1 updated, 1 deleted, 2 unchanged
`, dir)), ptr(""))
	pa.waitJobs(t, "mirror:audit.log:dc1-dc2 mirror:audit.log:dc2-dc1")
	ferry(t, repoRoot, "apply", dir, "--http", a).want(t, 0, ptr(dir+" as cue:pipelines: no changes, 3 objects up to date\n"), ptr(""))

	tf, err := api.NewClient(a, api.WithOwner(api.OwnerTerraform))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tf.Put(context.Background(), api.Mirror, "tf.events", schema.Mirror{Partitions: 1, Tier: 2}, nil); err != nil {
		t.Fatal(err)
	}
	writeDefs(t, dir, pair, `"audit.log": {partitions: 2, tier: 3}
	"tf.events": {partitions: 1, tier: 2}`)
	ferry(t, repoRoot, "apply", dir, "--http", a).want(t, 1, ptr(""), ptr(fmt.Sprintf(`mirror "tf.events" is owned by terraform:default; change it there or delete it there first, or have an admin transfer it (POST /v1/transfer)
nothing applied: 1 of the objects %s declares belong to other owners
`, dir)))

	writeDefs(t, dir, pair, `"audit.log": {partitions: 2, tier: 5}`)
	r := ferry(t, repoRoot, "apply", dir, "--http", a)
	r.want(t, 1, ptr(""), nil)
	if !strings.Contains(r.stderr, `mirrors."audit.log".tier: invalid tier 5 (tiers are 1 to 4)`) {
		t.Fatalf("stderr %q lacks the compiler's message", r.stderr)
	}
}

// TestRunHomeRefusesExposure: the control API without a token listens on
// loopback only.
func TestRunHomeRefusesExposure(t *testing.T) {
	ferry(t, repoRoot, "run", "--home", "dc1=127.0.0.1:1", "--http", "0.0.0.0:0").want(t, 1, ptr(""),
		ptr("--http 0.0.0.0:0 is not a loopback address and no --token-file is given: anyone who reaches it could change what runs; pass --token-file FILE, or listen on 127.0.0.1\n"))
}

// writeDefs writes a definitions directory for the pair with the given
// mirrors.
func writeDefs(t *testing.T, dir string, pair *devenv.Pair, mirrors string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`package pipelines

datacenters: {
	dc1: kafka: brokers: [%q]
	dc2: kafka: brokers: [%q]
}

mirrors: {
	%s
}
`, pair.DC1.Addr(), pair.DC2.Addr(), mirrors)
	if err := os.WriteFile(filepath.Join(dir, "pipelines.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSharedDatacenters: two CUE directories and a Terraform workspace
// manage disjoint mirrors over datacenters and a shard that a platform
// workspace owns. A directory that declares no datacenter is invalid
// alone, valid offline with the group's definitions saved from GET
// /v1/definitions (--with), and applied as it is: ferry apply compiles it
// with what the other owners store. Each apply changes its own mirrors
// only, and the executors run all of them.
func TestSharedDatacenters(t *testing.T) {
	pair := devtest.Pair(t)
	p := startFerry(t, "", nil, "run", "--home", "dc1="+pair.DC1.Addr())
	ctx := context.Background()
	platform, err := api.NewClient(p.addr, api.WithOwner("terraform:platform"))
	if err != nil {
		t.Fatal(err)
	}
	for name, addr := range map[string]string{"dc1": pair.DC1.Addr(), "dc2": pair.DC2.Addr()} {
		if _, err := platform.Put(ctx, api.Datacenter, name, schema.Datacenter{Kafka: schema.Kafka{Brokers: []string{addr}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := platform.Put(ctx, api.Shard, "standard", schema.Shard{Tiers: []int{1, 2, 3, 4}}, nil); err != nil {
		t.Fatal(err)
	}

	root := t.TempDir()
	mirrorsOnly := func(name, mirrors string) string {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pipelines.cue"), []byte("package pipelines\n\nmirrors: {\n\t"+mirrors+"\n}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	payments := mirrorsOnly("payments", `"payments.events": {partitions: 2, tier: 1, shard: "standard"}`)
	search := mirrorsOnly("search", `"search.events": {partitions: 1, tier: 2}`)

	r := ferry(t, repoRoot, "validate", payments)
	r.want(t, 1, ptr(""), nil)
	if !strings.Contains(r.stderr, "datacenters") {
		t.Errorf("validate without the group's definitions: %q, want a line on datacenters", r.stderr)
	}
	defs, err := api.Join(mustObjects(t, platform))
	if err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(root, "definitions.json")
	b, _ := json.Marshal(defs)
	if err := os.WriteFile(saved, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ferry(t, repoRoot, "validate", payments, "--with", saved).want(t, 0, ptr(payments+": valid, 2 jobs\n"), ptr(""))

	ferry(t, repoRoot, "apply", payments, "--http", p.addr).want(t, 0, ptr(fmt.Sprintf("+ mirror payments.events\napplied %s as cue:payments: 1 created, 0 updated, 0 deleted, 0 unchanged\n", payments)), ptr(""))
	ferry(t, repoRoot, "apply", search, "--http", p.addr).want(t, 0, ptr(fmt.Sprintf("+ mirror search.events\napplied %s as cue:search: 1 created, 0 updated, 0 deleted, 0 unchanged\n", search)), ptr(""))
	team, err := api.NewClient(p.addr, api.WithOwner("terraform:orders"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := team.Put(ctx, api.Mirror, "orders.events", schema.Mirror{Partitions: 1, Tier: 2}, nil); err != nil {
		t.Fatal(err)
	}
	p.waitJobs(t, "mirror:orders.events:dc1-dc2 mirror:orders.events:dc2-dc1 mirror:payments.events:dc1-dc2 mirror:payments.events:dc2-dc1 mirror:search.events:dc1-dc2 mirror:search.events:dc2-dc1")

	mirrorsOnly("payments", `"payments.audit": {partitions: 1, tier: 3}`)
	ferry(t, repoRoot, "apply", payments, "--http", p.addr).want(t, 0, ptr(fmt.Sprintf("+ mirror payments.audit\n- mirror payments.events\napplied %s as cue:payments: 1 created, 0 updated, 1 deleted, 0 unchanged\n", payments)), ptr(""))
	p.waitJobs(t, "mirror:orders.events:dc1-dc2 mirror:orders.events:dc2-dc1 mirror:payments.audit:dc1-dc2 mirror:payments.audit:dc2-dc1 mirror:search.events:dc1-dc2 mirror:search.events:dc2-dc1")
	owners := map[string]string{}
	for _, o := range mustObjects(t, platform) {
		owners[api.Key(o.Kind, o.Name)] = o.Owner
	}
	want := map[string]string{
		"datacenter/dc1": "terraform:platform", "datacenter/dc2": "terraform:platform", "shard/standard": "terraform:platform",
		"mirror/payments.audit": "cue:payments", "mirror/search.events": "cue:search", "mirror/orders.events": "terraform:orders",
	}
	if diff := cmp.Diff(want, owners); diff != "" {
		t.Errorf("stored owners (-want +got):\n%s", diff)
	}

	// Groups and alert settings are stored like the rest, not dropped.
	mirrorsOnly("search", `"search.events": {partitions: 1, tier: 2}
}
groups: ["search-*"]
alerts: labels: team: "search"
{`)
	ferry(t, repoRoot, "apply", search, "--http", p.addr).want(t, 0, ptr(fmt.Sprintf("+ alerts settings alerts\n+ consumer group search-*\napplied %s as cue:search: 2 created, 0 updated, 0 deleted, 1 unchanged\n", search)), ptr(""))
}

func mustObjects(t *testing.T, c *api.Client) []api.Object {
	t.Helper()
	objs, err := c.Objects(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return objs
}
