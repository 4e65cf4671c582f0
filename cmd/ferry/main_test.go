package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/internal/golden"
)

// The CLI tests run the real binary, as users and CI do, so that exit
// codes and the split between stdout and stderr are what is tested.
var ferryBin string

// repoRoot is where the tests find pipelines/ and testdata/.
var repoRoot = filepath.Join("..", "..")

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ferryBin = filepath.Join(dir, "ferry")
	if out, err := exec.Command("go", "build", "-o", ferryBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	if repoRoot, err = filepath.Abs(repoRoot); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of ferry gave.
type result struct {
	code           int
	stdout, stderr string
}

// ferry runs the binary in dir with args.
func ferry(t *testing.T, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("running ferry %v: %v", args, err)
	}
	r := result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
		t.Fatalf("ferry %v printed a Go stack trace:\n%s", args, r.stderr)
	}
	return r
}

// want checks a run's exit code and, where given, its exact output.
func (r result) want(t *testing.T, code int, stdout, stderr *string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	if stdout != nil && r.stdout != *stdout {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, *stdout)
	}
	if stderr != nil && r.stderr != *stderr {
		t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, *stderr)
	}
}

func ptr(s string) *string { return &s }

// copyPipelines makes a private copy of pipelines/, plus extra files.
func copyPipelines(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(repoRoot, "pipelines"))); err != nil {
		t.Fatal(err)
	}
	for name, content := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestValidateExample: the design.md example is valid.
func TestValidateExample(t *testing.T) {
	ferry(t, repoRoot, "validate", "pipelines").want(t, 0, ptr("pipelines: valid, 5 jobs\n"), ptr(""))
}

// TestValidateBrokenCases runs `ferry validate` on every broken golden
// case, from inside its directory: exit 1, exactly the case's lines on
// stderr, nothing on stdout.
func TestValidateBrokenCases(t *testing.T) {
	broken := 0
	for _, a := range golden.Load(t, filepath.Join(repoRoot, "testdata", "compiler", "*.txtar"), 30) {
		want, ok := a.Section("errors")
		if !ok {
			continue
		}
		broken++
		t.Run(a.Name, func(t *testing.T) {
			fsys, err := txtar.FS(a.Archive)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := os.CopyFS(dir, fsys); err != nil { // the errors file is not .cue: ferry skips it
				t.Fatal(err)
			}
			ferry(t, dir, "validate").want(t, 1, ptr(""), ptr(string(want)))
		})
	}
	if broken < 25 {
		t.Errorf("only %d broken cases in testdata/compiler", broken)
	}
}

// TestValidateNoDefinitions: a directory that is missing, empty or a file
// is one line naming it.
func TestValidateNoDefinitions(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "one.cue"), []byte("package pipelines\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for arg, stderr := range map[string]string{
		"nowhere": "nowhere: no such directory\n",
		"empty":   "no .cue files in empty\n",
		"one.cue": "one.cue is not a directory of .cue files\n",
	} {
		ferry(t, dir, "validate", arg).want(t, 1, ptr(""), &stderr)
	}
}

// TestCompileDeterministic: the same input gives the same bytes, on
// stdout and with -o.
func TestCompileDeterministic(t *testing.T) {
	first := ferry(t, repoRoot, "compile", "pipelines")
	first.want(t, 0, nil, ptr(""))
	ferry(t, repoRoot, "compile", "pipelines").want(t, 0, &first.stdout, ptr(""))

	out := filepath.Join(t.TempDir(), "plan.json")
	ferry(t, repoRoot, "compile", "pipelines", "-o", out).want(t, 0, ptr(""), ptr(""))
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != first.stdout {
		t.Errorf("-o wrote other bytes than stdout:\n%s", b)
	}
	if _, err := plan.Decode(b); err != nil {
		t.Errorf("compiled plan does not decode: %v", err)
	}
}

// oldPlan compiles pipelines/ into a plan file, the base of a diff.
func oldPlan(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "old.json")
	ferry(t, repoRoot, "compile", "pipelines", "-o", file).want(t, 0, ptr(""), ptr(""))
	return file
}

const paymentsMirror = "package pipelines\n\nmirrors: \"payments.events\": {partitions: 4, tier: 2}\n"

// TestPlan runs `ferry plan` against the compiled example: exit 2 and the
// new mirror's two jobs when one is added, exit 0 when nothing changed,
// the same diff as JSON with --json.
func TestPlan(t *testing.T) {
	old := oldPlan(t)
	added := copyPipelines(t, map[string]string{"payments.cue": paymentsMirror})
	tests := []struct {
		name   string
		dir    string
		args   []string
		code   int
		stdout string
	}{
		{"mirror added", added, nil, 2, `+ mirror:payments.events:dc1-dc2 (mirror, tier 2, shard standard)
+ mirror:payments.events:dc2-dc1 (mirror, tier 2, shard standard)
~ alerts (ferry compile --alerts)
    added: FerryTier2AtRisk, FerryTier2Breaching
~ dashboard (ferry compile --dashboard)
    added: Tier 2 (budget 10s): Lag, Tier 2 (budget 10s): Latency against the budget, Tier 2 (budget 10s): Throughput, Tier 2 (budget 10s): Within budget

2 to add, 0 to remove, 0 to change, 0 to move, 0 settings changed.
`},
		{"no change", copyPipelines(t, nil), nil, 0, "No changes.\n"},
		{"mirror added, as JSON", added, []string{"--json"}, 2, `{
  "added": [
    {
      "id": "mirror:payments.events:dc1-dc2",
      "kind": "mirror",
      "shard": "standard",
      "tier": 2
    },
    {
      "id": "mirror:payments.events:dc2-dc1",
      "kind": "mirror",
      "shard": "standard",
      "tier": 2
    }
  ],
  "removed": [],
  "changed": [],
  "moved": [],
  "settings": [],
  "outputs": [
    {
      "output": "alerts",
      "added": [
        "FerryTier2AtRisk",
        "FerryTier2Breaching"
      ],
      "removed": [],
      "changed": []
    },
    {
      "output": "dashboard",
      "added": [
        "Tier 2 (budget 10s): Lag",
        "Tier 2 (budget 10s): Latency against the budget",
        "Tier 2 (budget 10s): Throughput",
        "Tier 2 (budget 10s): Within budget"
      ],
      "removed": [],
      "changed": []
    }
  ]
}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ferry(t, tt.dir, append([]string{"plan", ".", "--from", old}, tt.args...)...)
			r.want(t, tt.code, &tt.stdout, ptr(""))
			if slices.Contains(tt.args, "--json") {
				var d plan.Diff
				if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || len(d.Added) != 2 {
					t.Errorf("--json output does not parse as a diff with 2 added jobs: %v", err)
				}
			}
		})
	}
}

// TestPlanRefusesBadOldPlan: a plan from a newer ferry, or a file that is
// no plan, is refused with exit 1 and a line naming the file and why.
func TestPlanRefusesBadOldPlan(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"newer.json": `{"version": 99, "jobs": []}`,
		"notes.json": `hello`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pipelines := filepath.Join(repoRoot, "pipelines")
	tests := []struct{ file, stderr string }{
		{"newer.json", "newer.json: plan version 99 is newer than this ferry understands (version 1): upgrade ferry\n"},
		{"notes.json", "notes.json: not a ferry plan: invalid character 'h' looking for beginning of value\n"},
		{"missing.json", "open missing.json: no such file or directory\n"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ferry(t, dir, "plan", pipelines, "--from", tt.file).want(t, 1, ptr(""), &tt.stderr)
		})
	}
}

// TestPlanInvalidDefinitions: definitions with problems make plan exit 1
// with the problems, not a diff.
func TestPlanInvalidDefinitions(t *testing.T) {
	old := oldPlan(t)
	dir := copyPipelines(t, map[string]string{"bad.cue": "package pipelines\n\nmirrors: \"x\": {partitions: 1, tier: 5}\n"})
	ferry(t, dir, "plan", "--from", old).want(t, 1, ptr(""), ptr("bad.cue:3:37: mirrors.x.tier: invalid tier 5 (tiers are 1 to 4)\n"))
}
