package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
