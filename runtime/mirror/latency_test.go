package mirror_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/statusapi"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestLatencyOfInjectedDelay produces records whose source timestamp is 2 s
// in the past: the job's latency must read about 2 s, and the job must be
// breaching its 300 ms budget.
func TestLatencyOfInjectedDelay(t *testing.T) {
	w := newWorld(t, map[string]schema.Mirror{"late": {Partitions: 1, Tier: 1}})
	ex := w.run()
	w.waitTopic("dc1", "late")
	waitAssignedJob(ex.Registry(), "mirror:late:dc1-dc2") // no wait for the group in the latency
	cl := w.client("dc1", kgo.DefaultProduceTopic("late"))
	past := time.Now().Add(-2 * time.Second)
	for i := 0; i < 50; i++ {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte("x"), Timestamp: past}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	st := waitRecords(t, ex, "mirror:late:dc1-dc2", 50)
	if st.Latency.P50 < 2000 || st.Latency.Max > 3000 {
		t.Fatalf("latency p50 %.1f ms, max %.1f ms; want about 2000 ms", st.Latency.P50, st.Latency.Max)
	}
	if st.Compliance != metrics.Breaching || st.WithinBudget != 0 {
		t.Fatalf("compliance %s, within budget %.2f; want breaching, 0", st.Compliance, st.WithinBudget)
	}
}

// TestSlowTargetBreaches delays every transaction commit on the target by
// 400 ms, more than the Tier 1 budget: the job must turn breaching.
func TestSlowTargetBreaches(t *testing.T) {
	w := newWorld(t, map[string]schema.Mirror{"slow": {Partitions: 1, Tier: 1}})
	ex := w.run()
	w.waitTopic("dc1", "slow")
	waitAssignedJob(ex.Registry(), "mirror:slow:dc1-dc2") // no wait for the group in the latency
	w.produce("dc1", "slow", 10)
	if st := waitRecords(t, ex, "mirror:slow:dc1-dc2", 10); st.Compliance != metrics.Healthy {
		t.Fatalf("before the delay: compliance %s, want healthy (p99 %.1f ms)", st.Compliance, st.Latency.P99)
	}
	w.pair.DC2.Cluster.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		w.pair.DC2.Cluster.KeepControl()
		time.Sleep(400 * time.Millisecond)
		return nil, nil, false
	})
	ex.Registry().Lookup("mirror:slow:dc1-dc2").Interval(time.Now()) // judge the slow interval alone
	w.produce("dc1", "slow", 20)
	st := waitRecords(t, ex, "mirror:slow:dc1-dc2", 30)
	if st.Compliance != metrics.Breaching {
		t.Fatalf("with 400 ms commits: compliance %s (p99 %.1f ms, within %.2f in the interval); want breaching", st.Compliance, st.Latency.P99, st.IntervalWithin)
	}
}

// TestMetricsReporterAndPrometheus runs the reporter at a 1 s interval and
// checks every field of the reports it writes to ferry.metrics, then scrapes
// /metrics and parses it with Prometheus's own parser.
func TestMetricsReporterAndPrometheus(t *testing.T) {
	w := newWorld(t, map[string]schema.Mirror{"metered": {Partitions: 2, Tier: 1}})
	w.plan.Metrics.Interval = plan.Duration(time.Second)
	ex := w.run()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		metrics.NewReporter(ex.Registry(), slog.New(slog.NewTextHandler(io.Discard, nil))).Run(ctx, ex.Plan)
	}()
	defer func() { cancel(); <-done }()
	w.waitTopic("dc1", "metered")
	w.produce("dc1", "metered", 300)
	waitRecords(t, ex, "mirror:metered:dc1-dc2", 300)

	// Reports of the dc1->dc2 job land in dc2; their records add up.
	cl := w.client("dc2", kgo.ConsumeTopics("ferry.metrics"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	deadline, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	var total int64
	var last metrics.Report
	for total < 300 && deadline.Err() == nil {
		cl.PollFetches(deadline).EachRecord(func(r *kgo.Record) {
			var rep metrics.Report
			if err := json.Unmarshal(r.Value, &rep); err != nil {
				t.Fatalf("ferry.metrics holds %q: %v", r.Value, err)
			}
			if string(r.Key) != rep.Job {
				t.Fatalf("report keyed %q for job %q", r.Key, rep.Job)
			}
			if rep.Job == "mirror:metered:dc1-dc2" {
				total += rep.Records
				if rep.Records > 0 {
					last = rep
				}
			}
		})
	}
	if total != 300 {
		t.Fatalf("reports of mirror:metered:dc1-dc2 add up to %d records, want 300", total)
	}
	checks := []struct {
		field string
		ok    bool
	}{
		{"time", time.Since(last.Time) < time.Minute && last.Time.Location() == time.UTC},
		{"kind", last.Kind == "mirror"},
		{"shard", last.Shard == "default"},
		{"tier", last.Tier == 1},
		{"process", last.Process != ""},
		{"state", last.State == metrics.StateRunning},
		{"interval_ms", last.IntervalMs >= 900 && last.IntervalMs <= 5000},
		{"bytes", last.Bytes > 0},
		{"dead_letters", last.DeadLetters == 0},
		{"lag", last.Lag >= 0},
		{"latency", last.P50Ms > 0 && last.P50Ms <= last.P99Ms && last.P99Ms <= last.MaxMs},
		{"budget_ms", last.BudgetMs == 300},
		{"within_budget", last.WithinBudget >= 0 && last.WithinBudget <= 1},
		{"compliance", last.Compliance == metrics.Healthy || last.Compliance == metrics.AtRisk || last.Compliance == metrics.Breaching},
		{"records_total", last.RecordsTotal > 0 && last.RecordsTotal <= 300},
		{"within_budget_total", last.WithinBudgetTotal >= 0 && last.WithinBudgetTotal <= 1},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("report field %s is wrong: %+v", c.field, last)
		}
	}

	srv := httptest.NewServer(statusapi.Handler(ex.Registry(), nil))
	defer srv.Close()
	families := scrape(t, srv.URL)
	var records float64
	for _, m := range families["ferry_records_total"].GetMetric() {
		if label(m.GetLabel(), "job") == "mirror:metered:dc1-dc2" {
			records += m.GetCounter().GetValue()
		}
	}
	if records != 300 {
		t.Fatalf("ferry_records_total of the job sums to %v, want 300", records)
	}
	var count uint64
	for _, m := range families["ferry_latency_seconds"].GetMetric() {
		if label(m.GetLabel(), "job") == "mirror:metered:dc1-dc2" {
			count = m.GetHistogram().GetSampleCount()
		}
	}
	if count != 300 {
		t.Fatalf("ferry_latency_seconds count %d, want 300", count)
	}
	if families["ferry_budget_seconds"] == nil || families["ferry_within_budget_ratio"] == nil {
		t.Fatal("ferry_budget_seconds or ferry_within_budget_ratio missing")
	}
}

func label(pairs []*dto.LabelPair, name string) string {
	for _, p := range pairs {
		if p.GetName() == name {
			return p.GetValue()
		}
	}
	return ""
}

// waitRecords waits until the job has delivered n records and returns its
// status.
func waitRecords(t testing.TB, ex *executor.Executor, id string, n int64) metrics.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var st metrics.Status
	for time.Now().Before(deadline) {
		if j := ex.Registry().Lookup(id); j != nil {
			if st = j.Status(); st.Counters[metrics.Records] >= n {
				return st
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s delivered %d records, want %d (state %s %s)", id, st.Counters[metrics.Records], n, st.State, strings.TrimSpace(st.Error))
	return st
}

// scrape reads the Prometheus metrics an executor's API at url serves.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return families
}
