package cdc

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/schema"
)

// planFile writes a plan of the world's datacenter and jobs, as `ferry
// compile` would, for tests that run `ferry run --plan` as a process.
func (w *world) planFile(jobs ...plan.Job) string {
	w.t.Helper()
	p := *w.plan
	p.Shards = map[string]schema.Shard{"default": {Tiers: []int{1, 2, 3, 4}}}
	p.Tiers = map[string]plan.Duration{"1": plan.Duration(300 * time.Millisecond), "2": plan.Duration(10 * time.Second), "3": plan.Duration(10 * time.Minute), "4": plan.Duration(time.Hour)}
	p.Metrics = plan.Metrics{Interval: plan.Duration(10 * time.Second)}
	p.Jobs = jobs
	data, err := p.Encode()
	if err != nil {
		w.t.Fatal(err)
	}
	file := filepath.Join(w.t.TempDir(), "plan.json")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		w.t.Fatal(err)
	}
	return file
}

// runFerry starts `ferry run --plan file` with extra arguments and the
// source's password in its environment; the test ends it if it still runs.
func runFerry(t testing.TB, file string, args ...string) *exec.Cmd {
	t.Helper()
	cmd, err := devenv.FerryCommand(append([]string{"run", "--plan", file, "--log-level", "warn"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(), passEnv+"="+devenv.FerryPassword)
	if os.Getenv("FERRY_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// checkLoadedOnce asserts that the snapshotted table's topic, folded by key,
// equals the table and that the load read no row twice; it returns the
// rows the load read.
func checkLoadedOnce(t testing.TB, w *world, table string) int {
	t.Helper()
	rs := w.read("trading." + table)
	compareState(t, fold(t, rs), tableState(t, w.db, table))
	reads := map[string]int{}
	for _, x := range rs {
		if !x.tomb && decode(t, x).Op == "r" {
			reads[x.key]++
			if reads[x.key] > 1 {
				t.Fatalf("key %s read twice by the load", x.key)
			}
		}
	}
	return len(reads)
}
