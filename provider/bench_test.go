package provider

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkTerraform500Mirrors times `terraform apply` of 500 ferry_mirror
// resources, then `terraform plan` of the same configuration, which must
// find no changes (goal: under 30 s). It runs the real provider binary as
// Terraform's plugin (dev_overrides, nothing downloaded) against a control
// service on an embedded Kafka cluster.
func BenchmarkTerraform500Mirrors(b *testing.B) {
	const mirrors = 500
	for i := 0; i < b.N; i++ {
		s := startServer(b)
		dir := b.TempDir()
		bin := filepath.Join(dir, "bin")
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "terraform-provider-ferry"), "../cmd/terraform-provider-ferry").CombinedOutput(); err != nil {
			b.Fatalf("go build: %v\n%s", err, out)
		}
		cli := filepath.Join(dir, "terraformrc")
		writeFile(b, cli, fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"ferry-pipelines/ferry\" = %q\n  }\n  direct {}\n}\n", bin))
		var cfg strings.Builder
		cfg.WriteString(s.config(twoDatacenters))
		for m := 0; m < mirrors; m++ {
			fmt.Fprintf(&cfg, "\nresource \"ferry_mirror\" \"m%d\" {\n  name       = \"bench.topic%d\"\n  partitions = 3\n  tier       = 2\n  depends_on = [ferry_datacenter.dc1, ferry_datacenter.dc2]\n}\n", m, m)
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
		apply, code, out := terraform("apply", "-auto-approve", "-input=false", "-no-color")
		if code != 0 {
			b.Fatalf("terraform apply: exit %d\n%s", code, tail(out))
		}
		plan, code, out := terraform("plan", "-detailed-exitcode", "-input=false", "-no-color")
		if code != 0 {
			b.Fatalf("terraform plan after apply: exit %d (2 means changes), want 0\n%s", code, tail(out))
		}
		objs, err := s.client.List(b.Context(), "mirror")
		if err != nil || len(objs) != mirrors {
			b.Fatalf("%d mirrors stored (%v), want %d", len(objs), err, mirrors)
		}
		b.ReportMetric(apply.Seconds(), "apply-s")
		b.ReportMetric(plan.Seconds(), "plan-s")
		b.ReportMetric(plan.Seconds()/30, "plan/goal")
		b.Logf("terraform apply of %d mirrors: %.1fs; terraform plan without changes: %.1fs (goal: under 30s)", mirrors, apply.Seconds(), plan.Seconds())
	}
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
