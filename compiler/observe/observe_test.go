package observe_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/observe"
	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/internal/golden"
)

// The golden cases live in testdata/observe/*.txtar: the .cue files of a
// definition directory, and the alerts.yaml and dashboard.json that
// ferry compile --alerts and --dashboard write from it.
// FERRY_UPDATE_GOLDEN=1 rewrites the two outputs.

type goldenCase struct {
	*golden.Archive
	plan *plan.Plan
}

func loadCases(t *testing.T) []goldenCase {
	t.Helper()
	var out []goldenCase
	for _, a := range golden.Load(t, filepath.Join("..", "..", "testdata", "observe", "*.txtar"), 2) {
		dir := t.TempDir()
		for _, af := range a.Files {
			if strings.HasSuffix(af.Name, ".cue") {
				if err := os.WriteFile(filepath.Join(dir, af.Name), af.Data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		p, _, err := compiler.CompileDir(dir)
		if err != nil {
			t.Fatalf("%s: %v", a.Path, err)
		}
		out = append(out, goldenCase{Archive: a, plan: p})
	}
	return out
}

func TestGolden(t *testing.T) {
	for _, c := range loadCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			for _, out := range []struct {
				name string
				gen  func(*plan.Plan) ([]byte, error)
			}{{"alerts.yaml", observe.Rules}, {"dashboard.json", observe.Dashboard}} {
				name, gen := out.name, out.gen
				got, err := gen(c.plan)
				if err != nil {
					t.Fatal(err)
				}
				again, _ := gen(c.plan)
				if !bytes.Equal(got, again) {
					t.Fatalf("%s differs between two runs: not deterministic", name)
				}
				if got[len(got)-1] != '\n' {
					got = append(got, '\n')
				}
				c.Check(t, name, got)
			}
		})
	}
}

// TestPromtoolCheck has promtool (Debian's prometheus package) check every
// golden rule file.
func TestPromtoolCheck(t *testing.T) {
	promtool := devtest.Tool(t, "promtool")
	for _, c := range loadCases(t) {
		rules, err := observe.Rules(c.plan)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), c.Name+".yaml")
		if err := os.WriteFile(file, rules, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
			t.Errorf("%s: promtool check rules: %v\n%s", c.Name, err, out)
		}
	}
}

// TestDashboardShape checks what Grafana's import needs: unique panel
// ids, known panel types, every query on the datasource variable, the
// template variables defined, rows holding graphs.
func TestDashboardShape(t *testing.T) {
	for _, c := range loadCases(t) {
		b, err := observe.Dashboard(c.plan)
		if err != nil {
			t.Fatal(err)
		}
		var board observe.Board
		if err := json.Unmarshal(b, &board); err != nil {
			t.Fatal(err)
		}
		vars := map[string]bool{}
		for _, v := range board.Templating.List {
			vars[v.Name] = true
		}
		for _, want := range []string{"datasource", "shard", "job"} {
			if !vars[want] {
				t.Errorf("%s: no template variable %s", c.Name, want)
			}
		}
		ids := map[int]bool{}
		graphs := 0
		for _, p := range board.Panels {
			if ids[p.ID] || p.ID <= 0 {
				t.Errorf("%s: panel id %d not unique or not positive", c.Name, p.ID)
			}
			ids[p.ID] = true
			switch p.Type {
			case "row":
			case "timeseries":
				graphs++
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
					t.Errorf("%s: panel %q has no query on ${datasource}", c.Name, p.Title)
				}
				for _, tg := range p.Targets {
					if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" || tg.Expr == "" || tg.RefID == "" {
						t.Errorf("%s: panel %q: target %+v", c.Name, p.Title, tg)
					}
				}
			default:
				t.Errorf("%s: panel %q of type %s", c.Name, p.Title, p.Type)
			}
			if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: panel %q at %+v", c.Name, p.Title, p.GridPos)
			}
		}
		if graphs < 6 {
			t.Errorf("%s: %d graphs", c.Name, graphs)
		}
	}
}

// TestPromtoolRules has promtool evaluate the rules of testdata/observe/
// settings.txtar on series that cross each threshold: a Tier 1 job whose
// records all take 250 ms against a 200 ms budget, a healthy Tier 2 job,
// a failing job that dead-letters, and no series at all of a shard. The
// annotations (templates promtool check validates) are left out: only
// when each alert fires is compared.
func TestPromtoolRules(t *testing.T) {
	promtool := devtest.Tool(t, "promtool")
	var c goldenCase
	for _, gc := range loadCases(t) {
		if gc.Name == "settings" {
			c = gc
		}
	}
	if c.plan == nil {
		t.Fatal("no settings case")
	}
	rules, err := observe.Rules(c.plan)
	if err != nil {
		t.Fatal(err)
	}
	var f observe.RuleFile
	if err := yaml.Unmarshal(rules, &f); err != nil {
		t.Fatal(err)
	}
	for g := range f.Groups {
		for r := range f.Groups[g].Rules {
			f.Groups[g].Rules[r].Annotations = nil
		}
	}
	dir := t.TempDir()
	b, _ := yaml.Marshal(f)
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	const (
		t1  = `job="mirror:payments.events:dc1-dc2",kind="mirror",shard="default",tier="1"`
		t2  = `job="mirror:payments.audit:dc1-dc2",kind="mirror",shard="default",tier="2"`
		bad = `job="mirror:payments.audit:dc2-dc1",kind="mirror",shard="default",tier="2"`
	)
	labels := func(job, severity string) string {
		l := strings.NewReplacer(`job=`, "job: ", `kind=`, "kind: ", `shard=`, "shard: ", `tier=`, "tier: ", ",", ", ").Replace(job)
		return "{" + l + ", severity: " + severity + ", team: payments}"
	}
	test := `rule_files: [rules.yaml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      # Tier 1: every record between 200 and 300 ms, 10 a second.
      - {series: 'ferry_latency_seconds_bucket{` + t1 + `,le="0.2"}', values: '0x40'}
      - {series: 'ferry_latency_seconds_bucket{` + t1 + `,le="0.3"}', values: '0+150x40'}
      - {series: 'ferry_latency_seconds_bucket{` + t1 + `,le="+Inf"}', values: '0+150x40'}
      - {series: 'ferry_records_total{` + t1 + `,part="0"}', values: '0+150x40'}
      - {series: 'ferry_within_budget_total{` + t1 + `}', values: '0x40'}
      - {series: 'ferry_job_state{` + t1 + `,state="running"}', values: '1x40'}
      # Tier 2: every record within 1 s, healthy.
      - {series: 'ferry_latency_seconds_bucket{` + t2 + `,le="1"}', values: '0+150x40'}
      - {series: 'ferry_latency_seconds_bucket{` + t2 + `,le="+Inf"}', values: '0+150x40'}
      - {series: 'ferry_records_total{` + t2 + `,part="0"}', values: '0+150x40'}
      - {series: 'ferry_within_budget_total{` + t2 + `}', values: '0+150x40'}
      - {series: 'ferry_job_state{` + t2 + `,state="running"}', values: '1x40'}
      # A job in error that dead-letters 5 records at 1m.
      - {series: 'ferry_job_state{` + bad + `,state="error"}', values: '1x40'}
      - {series: 'ferry_dead_letters_total{` + bad + `,part="0"}', values: '0 0 0 0 5x36'}
    alert_rule_test:
      - {eval_time: 30s, alertname: FerryTier1Breaching, exp_alerts: []}
      - {eval_time: 2m, alertname: FerryTier1Breaching, exp_alerts: [{exp_labels: ` + labels(t1, "critical") + `}]}
      - {eval_time: 2m, alertname: FerryTier1AtRisk, exp_alerts: []}
      - {eval_time: 4m, alertname: FerryTier1AtRisk, exp_alerts: [{exp_labels: ` + labels(t1, "critical") + `}]}
      - {eval_time: 8m, alertname: FerryTier2AtRisk, exp_alerts: []}
      - {eval_time: 8m, alertname: FerryTier2Breaching, exp_alerts: []}
      - {eval_time: 3m, alertname: FerryJobFailing, exp_alerts: [{exp_labels: ` + labels(bad, "critical") + `}]}
      - {eval_time: 2m, alertname: FerryDeadLetters, exp_alerts: [{exp_labels: ` + labels(bad, "warning") + `}]}
      - {eval_time: 5m, alertname: FerryShardSilent, exp_alerts: []}
  - interval: 15s
    input_series:
      - {series: 'ferry_job_state{job="x",kind="mirror",shard="elsewhere",tier="1",state="running"}', values: '1x20'}
    alert_rule_test:
      - {eval_time: 1m, alertname: FerryShardSilent, exp_alerts: []}
      - {eval_time: 3m, alertname: FerryShardSilent, exp_alerts: [{exp_labels: {severity: critical, team: payments, shard: default}}]}
`
	if err := os.WriteFile(filepath.Join(dir, "test.yaml"), []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", "test.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
