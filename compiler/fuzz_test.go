package compiler_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// positioned is an error line as `ferry validate` prints it: a position in
// one of the user's files (never in ferry's schema), then the message.
var positioned = regexp.MustCompile(`^(?:.*/)?[ab]\.cue:[0-9]+:[0-9]+: \S`)

// FuzzCompileDir compiles arbitrary content as a directory of two .cue
// files (seeds: testdata/fuzz/FuzzCompileDir, made from the golden cases in
// testdata/compiler and pipelines/). It must never panic, and it must give
// either a plan that encodes and decodes back, or a list of problems each
// positioned in a.cue or b.cue, whole-file problems at line 1 column 1.
func FuzzCompileDir(f *testing.F) {
	f.Fuzz(func(t *testing.T, a, b string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "a.cue"), []byte(a), 0o644); err != nil {
			t.Fatal(err)
		}
		if b != "" {
			if err := os.WriteFile(filepath.Join(dir, "b.cue"), []byte(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		checkCompile(t, dir)
	})
}

// FuzzCompileFields fills a definition set that uses every section with
// arbitrary names and values (seeds: testdata/fuzz/FuzzCompileFields), so
// that the checks and the placement, not only the parser, meet odd input.
// Besides FuzzCompileDir's properties, every job of a plan is on a shard
// of the plan that accepts its tier.
func FuzzCompileFields(f *testing.F) {
	f.Fuzz(func(t *testing.T, dc1, dc2, shard string, tierMask uint8, maxJobs int, budget, topic string, partitions, tier int,
		mirrorShard, source string, serverID int64, table, snapshot, sinkTable, group string) {
		var tiers []string
		for i := 0; i < 8; i++ {
			if tierMask&(1<<i) != 0 {
				tiers = append(tiers, fmt.Sprint(i+1))
			}
		}
		q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
		src := fmt.Sprintf(`package pipelines

datacenters: {
	%s: kafka: brokers: ["k1:9092"]
	%s: kafka: brokers: ["k2:9092"]
}
shards: %s: {tiers: [%s], maxJobs: %d}
tiers: "%d": budget: %s
mirrors: %s: {partitions: %d, tier: %d, shard: %s}
cdc: %s: {
	mysql: {address: "db:3306", user: "ferry", password: env: "P", serverID: %d}
	datacenter:  %s
	topicPrefix: "trading"
	tables: %s: {tier: %d, snapshot: %s, sink: {postgres: dsn: env: "PG", table: %s}}
}
groups: [%s]
`, q(dc1), q(dc2), q(shard), strings.Join(tiers, ", "), maxJobs, tier, q(budget), q(topic), partitions, tier, q(mirrorShard),
			q(source), serverID, q(dc1), q(table), tier, q(snapshot), q(sinkTable), q(group))
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "a.cue"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		p := checkCompile(t, dir)
		if p == nil {
			return
		}
		for _, j := range p.Jobs {
			if s, ok := p.Shards[j.Shard]; !ok || !s.Accepts(j.Tier) {
				t.Fatalf("job %s (tier %d) is placed on shard %q, which the plan lacks or which does not accept the tier:\n%s", j.ID, j.Tier, j.Shard, src)
			}
		}
	})
}

// checkCompile compiles dir and checks the outcome: a plan that encodes
// and decodes (returned), or problems each positioned in a.cue or b.cue.
func checkCompile(t *testing.T, dir string) *plan.Plan {
	t.Helper()
	p, defs, err := compiler.CompileDir(dir)
	if err == nil {
		if p == nil || defs == nil {
			t.Fatal("no error and no plan")
		}
		enc, err := p.Encode()
		if err != nil {
			t.Fatalf("the plan does not encode: %v", err)
		}
		if _, err := plan.Decode(enc); err != nil {
			t.Fatalf("the plan does not decode: %v\n%s", err, enc)
		}
		return p
	}
	var errs compiler.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %T is not a list of problems: %v", err, err)
	}
	if len(errs) == 0 {
		t.Fatal("an empty list of problems")
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !positioned.MatchString(line) {
			t.Fatalf("problem without a position in a.cue or b.cue: %q\nall:\n%v", line, err)
		}
	}
	return nil
}
