// Package observe writes what operators would otherwise write by hand and
// let drift from the definitions: Prometheus alert rules (Rules) and a
// Grafana dashboard (Dashboard), both from the plan, so that a job moved
// to another tier or a budget overridden changes its alerts with it. Both
// are deterministic: the same plan gives the same bytes.
//
// They read the executor's metrics (docs/operating.md): scrape the
// executors with honor_labels, since ferry's metrics carry their own job
// label, the ferry job.
package observe

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// by is the labels every rule keeps: the ferry job and what placed it.
const by = "job, kind, shard, tier"

// Recorded series, each per ferry job over the last minute.
const (
	recP99     = "ferry:latency_p99_seconds:rate1m"
	recP50     = "ferry:latency_p50_seconds:rate1m"
	recWithin  = "ferry:within_budget:ratio_rate1m"
	recRecords = "ferry:records:rate1m"
	recLag     = "ferry:lag_records"
)

// RuleFile is a Prometheus rule file.
type RuleFile struct {
	Groups []RuleGroup `yaml:"groups"`
}

// RuleGroup is a named group of rules.
type RuleGroup struct {
	Name  string `yaml:"name"`
	Rules []Rule `yaml:"rules"`
}

// Rule is a recording rule or an alert.
type Rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// tierAlerts are one tier's alert settings with the defaults filled in.
type tierAlerts struct {
	tier                    int
	budget                  time.Duration
	severity                string
	atRiskFor, breachingFor time.Duration
}

// settings are the plan's alert settings for tier t: a tier's severity is
// critical for tiers 1 and 2 and warning for 3 and 4; a job is at risk
// for twice its budget (at least a minute) and breaching for its budget
// (at least 30 s) before its alert fires.
func settings(p *plan.Plan, t int) tierAlerts {
	b := p.Tiers[strconv.Itoa(t)].D()
	s := tierAlerts{tier: t, budget: b, severity: "warning", atRiskFor: max(2*b, time.Minute), breachingFor: max(b, 30*time.Second)}
	if t <= 2 {
		s.severity = "critical"
	}
	if p.Alerts == nil {
		return s
	}
	ta := p.Alerts.Tiers[strconv.Itoa(t)]
	if ta.Severity != "" {
		s.severity = ta.Severity
	}
	if d, err := time.ParseDuration(ta.AtRiskFor); err == nil {
		s.atRiskFor = d
	}
	if d, err := time.ParseDuration(ta.BreachingFor); err == nil {
		s.breachingFor = d
	}
	return s
}

// Rules is the Prometheus rule file of the plan: recording rules of each
// job's latency percentiles, share within budget, throughput and lag;
// per tier with jobs, alerts for a job at risk (p99 over the budget) and
// breaching (under 99% within it); and alerts for a failing job, growing
// lag, dead letters, a shard no executor reports, and a CDC source that
// reads no heartbeat back.
func Rules(p *plan.Plan) ([]byte, error) {
	f := RuleFile{Groups: []RuleGroup{recording()}}
	for _, t := range tiersOf(p) {
		f.Groups = append(f.Groups, tierGroup(p, settings(p, t)))
	}
	f.Groups = append(f.Groups, jobGroup(p))
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

func recording() RuleGroup {
	quantile := func(q string) string {
		return fmt.Sprintf("histogram_quantile(%s, sum by (%s, le) (rate(ferry_latency_seconds_bucket[1m])))", q, by)
	}
	return RuleGroup{Name: "ferry.recording", Rules: []Rule{
		{Record: recP99, Expr: quantile("0.99")},
		{Record: recP50, Expr: quantile("0.5")},
		{Record: recWithin, Expr: fmt.Sprintf("sum by (%s) (rate(ferry_within_budget_total[1m])) / sum by (%s) (rate(ferry_records_total[1m]))", by, by)},
		{Record: recRecords, Expr: fmt.Sprintf("sum by (%s) (rate(ferry_records_total[1m]))", by)},
		{Record: recLag, Expr: fmt.Sprintf("sum by (%s) (ferry_lag_records)", by)},
	}}
}

// tierGroup holds a tier's latency alerts, thresholds from its budget.
func tierGroup(p *plan.Plan, s tierAlerts) RuleGroup {
	t := strconv.Itoa(s.tier)
	name := "FerryTier" + t
	budget := promDuration(s.budget)
	return RuleGroup{Name: "ferry.tier" + t, Rules: []Rule{
		{
			Alert: name + "AtRisk", For: promDuration(s.atRiskFor),
			Expr:   fmt.Sprintf(`%s{tier="%s"} > %s`, recP99, t, seconds(s.budget)),
			Labels: labels(p, s.severity),
			Annotations: map[string]string{
				"summary": fmt.Sprintf("{{ $labels.job }}: Tier %s p99 latency {{ $value | humanizeDuration }} is over its %s budget", t, budget),
				"description": fmt.Sprintf("The 99th percentile of the job's end-to-end latency over the last minute has been over the Tier %s budget (%s) for %s. "+
					"More than 1%% of its records are late; see its lag, state and errors with `ferry status --http EXECUTOR`, then its target "+
					"(the target datacenter of a mirror, PostgreSQL of a sink) and, for a CDC source, the database.", t, budget, promDuration(s.atRiskFor)),
			},
		},
		{
			Alert: name + "Breaching", For: promDuration(s.breachingFor),
			Expr:   fmt.Sprintf(`%s{tier="%s"} < 0.99`, recWithin, t),
			Labels: labels(p, s.severity),
			Annotations: map[string]string{
				"summary": fmt.Sprintf("{{ $labels.job }}: only {{ $value | humanizePercentage }} of its records within the Tier %s budget (%s)", t, budget),
				"description": fmt.Sprintf("Under 99%% of the job's records of the last minute met the Tier %s budget (%s), for %s: the job breaches its tier. "+
					"`ferry status --http EXECUTOR` shows its latency percentiles, lag and state.", t, budget, promDuration(s.breachingFor)),
			},
		},
	}}
}

// jobGroup holds the alerts of any tier.
func jobGroup(p *plan.Plan) RuleGroup {
	g := RuleGroup{Name: "ferry.jobs", Rules: []Rule{
		{
			Alert: "FerryJobFailing", For: "2m",
			Expr:   fmt.Sprintf(`max by (%s) (ferry_job_state{state=~"error|waiting"}) == 1`, by),
			Labels: labels(p, "critical"),
			Annotations: map[string]string{
				"summary":     "{{ $labels.job }} is not running (error or waiting)",
				"description": "The job has been failing, or waiting for a datacenter or a server, for 2 minutes; the executor retries it. `ferry status --http EXECUTOR` shows its error line and the fix it names.",
			},
		},
		{
			Alert: "FerryLagGrowing", For: "10m",
			Expr:   fmt.Sprintf(`sum by (%s) (deriv(ferry_lag_records[5m])) > 0 and %s > 0`, by, recLag),
			Labels: labels(p, "warning"),
			Annotations: map[string]string{
				"summary":     "{{ $labels.job }}: lag has grown for 10 minutes ({{ $value }} records/s)",
				"description": "Records wait to be read and their number keeps growing: the job copies slower than its source is written. Add processes to its shard, or see `ferry status --http EXECUTOR` for retries.",
			},
		},
		{
			Alert:  "FerryDeadLetters",
			Expr:   fmt.Sprintf(`sum by (%s) (increase(ferry_dead_letters_total[10m])) > 0`, by),
			Labels: labels(p, "warning"),
			Annotations: map[string]string{
				"summary":     "{{ $labels.job }} dead-lettered {{ $value }} records in 10 minutes",
				"description": "Records that can never be written went to ferry.dlq in the target datacenter. `ferry dlq list {{ $labels.job }}` shows them and why; once the cause is fixed, `ferry dlq replay {{ $labels.job }}` delivers them.",
			},
		},
	}}
	for _, shard := range shardsOf(p) {
		g.Rules = append(g.Rules, Rule{
			Alert: "FerryShardSilent", For: "2m",
			Expr:   fmt.Sprintf(`absent(ferry_job_state{shard=%q})`, shard),
			Labels: labels(p, "critical", "shard", shard),
			Annotations: map[string]string{
				"summary":     fmt.Sprintf("no executor of shard %s reports its jobs", shard),
				"description": fmt.Sprintf("The plan places jobs on shard %s, and for 2 minutes no scraped executor has reported one: its processes are down, or not scraped (scrape them with honor_labels). Start them with `ferry run --shard %s`.", shard, shard),
			},
		})
	}
	for _, j := range p.Jobs {
		if j.CDC == nil {
			continue
		}
		silent := 60 * time.Second
		if hb := j.CDC.MySQL.Heartbeat; hb != nil {
			if d, err := time.ParseDuration(hb.Interval); err == nil {
				silent = max(silent, 10*d)
			}
		}
		g.Rules = append(g.Rules, Rule{
			Alert: "FerryCDCSourceSilent", For: "1m",
			Expr:   fmt.Sprintf(`time() - ferry_cdc_heartbeat_timestamp_seconds{job=%q} > %s`, j.ID, seconds(silent)),
			Labels: labels(p, "critical", "job", j.ID),
			Annotations: map[string]string{
				"summary":     fmt.Sprintf("%s has read no heartbeat back from the binlog for {{ $value | humanizeDuration }}", j.ID),
				"description": "The source writes a heartbeat row and reads it back from the binlog; none came back, so no table of the source is captured, whether or not it has writes. `ferry status --http EXECUTOR` shows its state; check the database (`SHOW MASTER STATUS`) and the source's account.",
			},
		})
	}
	return g
}

// labels are an alert's labels: its severity, the extra ones given, and
// the plan's alert labels.
func labels(p *plan.Plan, severity string, extra ...string) map[string]string {
	l := map[string]string{"severity": severity}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	if p.Alerts != nil {
		for k, v := range p.Alerts.Labels {
			l[k] = v
		}
	}
	return l
}

// tiersOf lists the tiers that have jobs.
func tiersOf(p *plan.Plan) []int { return distinct(p, func(j plan.Job) int { return j.Tier }) }

// shardsOf lists the shards that have jobs.
func shardsOf(p *plan.Plan) []string { return distinct(p, func(j plan.Job) string { return j.Shard }) }

// distinct lists the values of f over the plan's jobs, sorted, once each.
func distinct[T cmp.Ordered](p *plan.Plan, f func(plan.Job) T) []T {
	out := make([]T, 0, len(p.Jobs))
	for _, j := range p.Jobs {
		out = append(out, f(j))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// seconds writes a duration as PromQL seconds.
func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) }

// promDuration writes a duration as Prometheus does (1m, 30s, 1h30m).
func promDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit string
		d    time.Duration
	}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}} {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.unit)
			d -= n * u.d
		}
	}
	return b.String()
}
