package observe

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// The dashboard's shape, as Grafana 10 and later import it.
type (
	// Board is a Grafana dashboard.
	Board struct {
		UID           string     `json:"uid"`
		Title         string     `json:"title"`
		Tags          []string   `json:"tags"`
		Timezone      string     `json:"timezone"`
		Editable      bool       `json:"editable"`
		SchemaVersion int        `json:"schemaVersion"`
		Version       int        `json:"version"`
		Refresh       string     `json:"refresh"`
		Time          TimeRange  `json:"time"`
		Templating    Templating `json:"templating"`
		Panels        []Panel    `json:"panels"`
	}
	// TimeRange is the dashboard's default range.
	TimeRange struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
	// Templating holds the template variables.
	Templating struct {
		List []Variable `json:"list"`
	}
	// Variable is a template variable.
	Variable struct {
		Name       string      `json:"name"`
		Label      string      `json:"label"`
		Type       string      `json:"type"`
		Query      any         `json:"query"`
		Datasource *Datasource `json:"datasource,omitempty"`
		Definition string      `json:"definition,omitempty"`
		IncludeAll bool        `json:"includeAll"`
		Multi      bool        `json:"multi"`
		AllValue   string      `json:"allValue,omitempty"`
		Refresh    int         `json:"refresh"`
		Sort       int         `json:"sort"`
	}
	// Datasource names the data source a query runs on.
	Datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	// Panel is a row or a graph.
	Panel struct {
		ID          int          `json:"id"`
		Type        string       `json:"type"`
		Title       string       `json:"title"`
		Description string       `json:"description,omitempty"`
		GridPos     GridPos      `json:"gridPos"`
		Collapsed   *bool        `json:"collapsed,omitempty"`
		Datasource  *Datasource  `json:"datasource,omitempty"`
		Targets     []Target     `json:"targets,omitempty"`
		FieldConfig *FieldConfig `json:"fieldConfig,omitempty"`
		Panels      []Panel      `json:"panels,omitempty"`
	}
	// GridPos places a panel.
	GridPos struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	}
	// Target is a panel's query.
	Target struct {
		RefID        string      `json:"refId"`
		Expr         string      `json:"expr"`
		LegendFormat string      `json:"legendFormat"`
		Datasource   *Datasource `json:"datasource"`
	}
	// FieldConfig holds a panel's unit and bounds.
	FieldConfig struct {
		Defaults FieldDefaults `json:"defaults"`
	}
	// FieldDefaults are a panel's field settings.
	FieldDefaults struct {
		Unit string   `json:"unit"`
		Min  *float64 `json:"min,omitempty"`
		Max  *float64 `json:"max,omitempty"`
	}
)

// prometheus is the data source every query runs on: the one the
// datasource variable picks.
var prometheus = &Datasource{Type: "prometheus", UID: "${datasource}"}

// sel filters a series to the chosen shards and jobs (and a tier).
func sel(tier string) string {
	s := `shard=~"$shard", job=~"$job"`
	if tier != "" {
		s += `, tier="` + tier + `"`
	}
	return s
}

// Dashboard is the Grafana dashboard of the plan: a row per tier with jobs
// (latency percentiles against the budget line, share within budget,
// throughput and lag per job), a row of CDC tables (events per table and
// operation, initial-load progress) and one of dead letters; template
// variables for the data source, the shard and the job.
func Dashboard(p *plan.Plan) ([]byte, error) {
	b := &builder{}
	for _, t := range tiersOf(p) {
		ts := strconv.Itoa(t)
		b.row(fmt.Sprintf("Tier %d (budget %s)", t, p.Tiers[ts].D()))
		b.graph("Latency against the budget", "End-to-end latency per job (p50, p99 over 1 minute) and the tier's budget.", "s", nil,
			Target{Expr: fmt.Sprintf("histogram_quantile(0.99, sum by (job, le) (rate(ferry_latency_seconds_bucket{%s}[$__rate_interval])))", sel(ts)), LegendFormat: "p99 {{job}}"},
			Target{Expr: fmt.Sprintf("histogram_quantile(0.5, sum by (job, le) (rate(ferry_latency_seconds_bucket{%s}[$__rate_interval])))", sel(ts)), LegendFormat: "p50 {{job}}"},
			Target{Expr: fmt.Sprintf("max(ferry_budget_seconds{%s})", sel(ts)), LegendFormat: "budget"})
		b.graph("Within budget", "Share of each job's records delivered within the budget (under 99%: breaching).", "percentunit", unit(0, 1),
			Target{Expr: fmt.Sprintf("sum by (job) (rate(ferry_within_budget_total{%s}[$__rate_interval])) / sum by (job) (rate(ferry_records_total{%s}[$__rate_interval]))", sel(ts), sel(ts)), LegendFormat: "{{job}}"})
		b.graph("Throughput", "Records written to the target per second, per job.", "rps", nil,
			Target{Expr: fmt.Sprintf("sum by (job) (rate(ferry_records_total{%s}[$__rate_interval]))", sel(ts)), LegendFormat: "{{job}}"})
		b.graph("Lag", "Records waiting to be read, per job.", "short", nil,
			Target{Expr: fmt.Sprintf("sum by (job) (ferry_lag_records{%s})", sel(ts)), LegendFormat: "{{job}}"})
	}
	if hasKind(p, plan.KindCDC) {
		b.row("CDC tables")
		b.graph("Events per table", "Change events per second by table and operation (create, update, delete, snapshot_read, failed).", "ops", nil,
			Target{Expr: fmt.Sprintf(`sum by (job, part, op) (rate(ferry_cdc_events_total{%s}[$__rate_interval]))`, sel("")), LegendFormat: "{{part}} {{op}}"})
		b.graph("Initial loads", "Rows loaded of the estimate, per table.", "percentunit", unit(0, 1),
			Target{Expr: fmt.Sprintf(`ferry_snapshot_rows{%s, of="done"} / ignoring(of) ferry_snapshot_rows{%s, of="estimate"}`, sel(""), sel("")), LegendFormat: "{{part}}"})
		b.graph("Heartbeat age", "Seconds since each CDC source last read its heartbeat back from the binlog.", "s", nil,
			Target{Expr: fmt.Sprintf(`time() - ferry_cdc_heartbeat_timestamp_seconds{%s}`, sel("")), LegendFormat: "{{job}}"})
	}
	b.row("Dead letters")
	b.graph("Dead letters", "Records sent to ferry.dlq per job over 10 minutes: `ferry dlq list JOB` shows them.", "short", nil,
		Target{Expr: fmt.Sprintf("sum by (job) (increase(ferry_dead_letters_total{%s}[10m]))", sel("")), LegendFormat: "{{job}}"})
	b.graph("Jobs not running", "Jobs in state error or waiting.", "short", nil,
		Target{Expr: fmt.Sprintf(`sum by (job, state) (ferry_job_state{%s, state=~"error|waiting"}) > 0`, sel("")), LegendFormat: "{{job}} {{state}}"})

	board := Board{
		UID: "ferry", Title: "ferry", Tags: []string{"ferry"}, Timezone: "utc", Editable: true,
		SchemaVersion: 39, Version: 1, Refresh: "10s", Time: TimeRange{From: "now-1h", To: "now"},
		Templating: Templating{List: []Variable{
			{Name: "datasource", Label: "Data source", Type: "datasource", Query: "prometheus", Refresh: 1},
			{Name: "shard", Label: "Shard", Type: "query", Datasource: prometheus, Definition: "label_values(ferry_job_state, shard)",
				Query: map[string]string{"query": "label_values(ferry_job_state, shard)", "refId": "shard"}, IncludeAll: true, Multi: true, AllValue: ".*", Refresh: 2, Sort: 1},
			{Name: "job", Label: "Job", Type: "query", Datasource: prometheus, Definition: `label_values(ferry_job_state{shard=~"$shard"}, job)`,
				Query: map[string]string{"query": `label_values(ferry_job_state{shard=~"$shard"}, job)`, "refId": "job"}, IncludeAll: true, Multi: true, AllValue: ".*", Refresh: 2, Sort: 1},
		}},
		Panels: b.panels,
	}
	return json.MarshalIndent(board, "", "  ")
}

func unit(lo, hi float64) *[2]float64 { return &[2]float64{lo, hi} }

func hasKind(p *plan.Plan, kind string) bool {
	for _, j := range p.Jobs {
		if j.Kind == kind {
			return true
		}
	}
	return false
}

// builder lays panels out: rows across the board, graphs two by two.
type builder struct {
	panels []Panel
	id     int
	y, x   int
}

func (b *builder) next() int { b.id++; return b.id }

func (b *builder) row(title string) {
	if b.x != 0 {
		b.y, b.x = b.y+8, 0
	}
	collapsed := false
	b.panels = append(b.panels, Panel{ID: b.next(), Type: "row", Title: title, Collapsed: &collapsed, GridPos: GridPos{H: 1, W: 24, X: 0, Y: b.y}})
	b.y++
}

func (b *builder) graph(title, desc, unitName string, bounds *[2]float64, targets ...Target) {
	for i := range targets {
		targets[i].RefID = string(rune('A' + i))
		targets[i].Datasource = prometheus
	}
	fc := &FieldConfig{Defaults: FieldDefaults{Unit: unitName}}
	if bounds != nil {
		fc.Defaults.Min, fc.Defaults.Max = &bounds[0], &bounds[1]
	}
	b.panels = append(b.panels, Panel{ID: b.next(), Type: "timeseries", Title: title, Description: desc, Datasource: prometheus,
		GridPos: GridPos{H: 8, W: 12, X: b.x, Y: b.y}, Targets: targets, FieldConfig: fc})
	if b.x == 0 {
		b.x = 12
	} else {
		b.y, b.x = b.y+8, 0
	}
}
