package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/control"
	"github.com/ferry-pipelines/ferry/runtime/control/api"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/mirror"
	fschema "github.com/ferry-pipelines/ferry/schema"
)

// BenchmarkTerraformMirrors times `terraform plan` of N ferry_mirror
// resources that are all stored already, which must find no changes
// (goals: 500 under 10 s, 2,000 under 30 s), and single object reads
// (goal: p95 under 20 ms), while an executor runs the mirrors' jobs. For
// 500 the resources are created by `terraform apply`, which is timed too;
// the 2,000 are stored with one batch and brought into the state by import
// blocks, as a team adopting its objects would. It runs the real provider
// binary as Terraform's plugin (dev_overrides, nothing downloaded) against
// a control service on an embedded Kafka cluster, and an executor of this
// process follows the service's plan between two more.
func BenchmarkTerraformMirrors(b *testing.B) {
	for _, c := range []struct {
		mirrors int
		goal    time.Duration
		apply   bool
	}{{500, 10 * time.Second, true}, {2000, 30 * time.Second, false}} {
		b.Run(fmt.Sprintf("mirrors=%d", c.mirrors), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchTerraform(b, c.mirrors, c.goal, c.apply)
			}
		})
	}
}

func benchTerraform(b *testing.B, mirrors int, goal time.Duration, apply bool) {
	s := startServer(b)
	pair := devtest.Pair(b)
	ex := follow(b, s.svc)
	dir := b.TempDir()
	bin := filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "terraform-provider-ferry"), "../cmd/terraform-provider-ferry").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	cli := filepath.Join(dir, "terraformrc")
	writeFile(b, cli, fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"ferry-pipelines/ferry\" = %q\n  }\n  direct {}\n}\n", bin))
	var cfg strings.Builder
	dcs := map[string]string{"dc1": pair.DC1.Addr(), "dc2": pair.DC2.Addr()}
	cfg.WriteString(s.config(fmt.Sprintf("resource \"ferry_datacenter\" \"dc1\" {\n  name    = \"dc1\"\n  brokers = [%q]\n}\n\nresource \"ferry_datacenter\" \"dc2\" {\n  name    = \"dc2\"\n  brokers = [%q]\n}\n", dcs["dc1"], dcs["dc2"])))
	for m := 0; m < mirrors; m++ {
		fmt.Fprintf(&cfg, "\nresource \"ferry_mirror\" \"m%d\" {\n  name       = \"bench.topic%d\"\n  partitions = 3\n  tier       = 2\n  depends_on = [ferry_datacenter.dc1, ferry_datacenter.dc2]\n}\n", m, m)
	}
	if !apply {
		seedMirrors(b, s, dcs, mirrors)
		for m := 0; m < mirrors; m++ {
			fmt.Fprintf(&cfg, "\nimport {\n  to = ferry_mirror.m%d\n  id = \"bench.topic%d\"\n}\n", m, m)
		}
		for _, dc := range []string{"dc1", "dc2"} {
			fmt.Fprintf(&cfg, "\nimport {\n  to = ferry_datacenter.%s\n  id = %q\n}\n", dc, dc)
		}
	}
	work := filepath.Join(dir, "work")
	writeFile(b, filepath.Join(work, "main.tf"), cfg.String())
	terraform := func(args ...string) (time.Duration, int, string) {
		cmd := exec.Command(os.Getenv("TF_ACC_TERRAFORM_PATH"), args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+cli, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		if _, exited := err.(*exec.ExitError); err != nil && !exited {
			b.Fatal(err)
		}
		return time.Since(start), cmd.ProcessState.ExitCode(), out.String()
	}
	applied, code, out := terraform("apply", "-auto-approve", "-input=false", "-no-color")
	if code != 0 {
		b.Fatalf("terraform apply: exit %d\n%s", code, tail(out))
	}
	running := waitRunning(b, ex, mirrors)
	plan, code, out := terraform("plan", "-detailed-exitcode", "-input=false", "-no-color")
	if code != 0 {
		b.Fatalf("terraform plan after apply: exit %d (2 means changes), want 0\n%s", code, tail(out))
	}
	objs, err := s.client.List(b.Context(), "mirror")
	if err != nil || len(objs) != mirrors {
		b.Fatalf("%d mirrors stored (%v), want %d", len(objs), err, mirrors)
	}
	read := readP95(b, s, mirrors)
	if apply {
		b.ReportMetric(applied.Seconds(), "apply-s")
	}
	b.ReportMetric(plan.Seconds(), "plan-s")
	b.ReportMetric(plan.Seconds()/goal.Seconds(), "plan/goal")
	b.ReportMetric(float64(read.Microseconds())/1000, "read-p95-ms")
	b.Logf("%d mirrors: terraform apply %.1fs (imports: %v); the executor ran their %d jobs %.1fs later; plan without changes %.1fs (goal: under %v); a single read p95 %v (goal: under 20ms)",
		mirrors, applied.Seconds(), !apply, 2*mirrors, running.Seconds(), plan.Seconds(), goal, read.Round(100*time.Microsecond))
}

// follow starts an executor of mirror jobs that runs the plans the service
// publishes, until the benchmark ends.
func follow(b *testing.B, svc *control.Service) *executor.Executor {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ex := executor.New(executor.WithKind(plan.KindMirror, mirror.NewKind(mirror.WithLogger(quiet))), executor.WithLogger(quiet))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-svc.Plans():
				ex.Apply(ctx, p)
			}
		}
	}()
	b.Cleanup(func() { cancel(); <-done; ex.Stop() })
	return ex
}

// waitRunning waits until the executor runs both directions of every
// mirror and returns how long that took.
func waitRunning(b *testing.B, ex *executor.Executor, mirrors int) time.Duration {
	start := time.Now()
	for deadline := start.Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		running := 0
		for _, j := range ex.Registry().Jobs() {
			if j.Status().State == metrics.StateRunning {
				running++
			}
		}
		if running == 2*mirrors {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			b.Fatalf("the executor runs %d of the %d jobs after 3m", running, 2*mirrors)
		}
	}
}

// seedMirrors stores the benchmark's datacenters and mirrors in one batch,
// as Terraform's owner.
func seedMirrors(b *testing.B, s *server, dcs map[string]string, mirrors int) {
	var ops []api.Op
	put := func(kind api.Kind, name string, spec any) {
		raw, err := json.Marshal(spec)
		if err != nil {
			b.Fatal(err)
		}
		ops = append(ops, api.Op{Op: api.OpPut, Kind: kind, Name: name, Spec: raw})
	}
	for _, dc := range []string{"dc1", "dc2"} {
		put(api.Datacenter, dc, fschema.Datacenter{Kafka: fschema.Kafka{Brokers: []string{dcs[dc]}}})
	}
	for m := 0; m < mirrors; m++ {
		put(api.Mirror, fmt.Sprintf("bench.topic%d", m), fschema.Mirror{Partitions: 3, Tier: 2})
	}
	if _, err := s.client.Batch(b.Context(), api.Batch{Ops: ops}); err != nil {
		b.Fatal(err)
	}
}

// readP95 is the 95th percentile of 200 single mirror reads.
func readP95(b *testing.B, s *server, mirrors int) time.Duration {
	var took []time.Duration
	for i := 0; i < 200; i++ {
		start := time.Now()
		if _, err := s.client.Get(b.Context(), api.Mirror, fmt.Sprintf("bench.topic%d", i*7%mirrors)); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	return took[len(took)*95/100]
}

func writeFile(tb testing.TB, file, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// tail is the end of a long output.
func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}
