package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Prometheus exposes a registry's jobs to Prometheus. It reads the jobs on
// every scrape, so nothing is counted twice.
type Prometheus struct{ r *Registry }

// NewPrometheus returns a collector over r.
func NewPrometheus(r *Registry) *Prometheus { return &Prometheus{r: r} }

var (
	jobLabels  = []string{"job", "kind", "shard", "tier"}
	partLabels = []string{"job", "kind", "shard", "tier", "part"}

	descRecords     = prometheus.NewDesc("ferry_records_total", "Records written to the target, per part (partition or table).", partLabels, nil)
	descBytes       = prometheus.NewDesc("ferry_bytes_total", "Key and value bytes written to the target, per part.", partLabels, nil)
	descDeadLetters = prometheus.NewDesc("ferry_dead_letters_total", "Records sent to ferry.dlq, per part.", partLabels, nil)
	descRetries     = prometheus.NewDesc("ferry_retries_total", "Retried transactions or requests, per part.", partLabels, nil)
	descFiltered    = prometheus.NewDesc("ferry_filtered_total", "Records skipped by rule, per part.", partLabels, nil)
	descEvents      = prometheus.NewDesc("ferry_cdc_events_total", "CDC events by operation, per table.", append(partLabels, "op"), nil)
	descLag         = prometheus.NewDesc("ferry_lag_records", "Records waiting to be read, per part.", partLabels, nil)
	descLatency     = prometheus.NewDesc("ferry_latency_seconds", "End-to-end latency: target write acknowledged minus source time.", jobLabels, nil)
	descBudget      = prometheus.NewDesc("ferry_budget_seconds", "The job's latency budget (its tier's).", jobLabels, nil)
	descWithin      = prometheus.NewDesc("ferry_within_budget_ratio", "Share of records delivered within budget since the job started.", jobLabels, nil)
	descWithinTotal = prometheus.NewDesc("ferry_within_budget_total", "Records delivered within budget (of the job's records_total): rate them against ferry_records_total for a window's compliance.", jobLabels, nil)
	descHeartbeat   = prometheus.NewDesc("ferry_cdc_heartbeat_timestamp_seconds", "The newest heartbeat a CDC source read back from its binlog: it moves while the source reads, traffic or not.", jobLabels, nil)
	descState       = prometheus.NewDesc("ferry_job_state", "1 for the job's current state.", append(jobLabels, "state"), nil)
	descCompliance  = prometheus.NewDesc("ferry_job_compliance", "1 for the job's compliance: healthy, at_risk or breaching.", append(jobLabels, "compliance"), nil)
	descLastRecord  = prometheus.NewDesc("ferry_last_record_timestamp_seconds", "When the last record was written, per part.", partLabels, nil)
	descProgress    = prometheus.NewDesc("ferry_snapshot_rows", "CDC initial load: rows done and estimated in all, per table.", append(partLabels, "of"), nil)
	descLoadRate    = prometheus.NewDesc("ferry_snapshot_rows_per_second", "CDC initial load: rows per second since the load (re)started, per table.", partLabels, nil)

	cdcOps = []string{Creates, Updates, Deletes, SnapshotRead, Failed}
)

// Describe sends the descriptors of every metric.
func (p *Prometheus) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRecords, descBytes, descDeadLetters, descRetries, descFiltered, descEvents, descLag, descLatency, descBudget, descWithin, descWithinTotal, descHeartbeat, descState, descCompliance, descLastRecord, descProgress, descLoadRate} {
		ch <- d
	}
}

// Collect sends the current value of every metric of every job.
func (p *Prometheus) Collect(ch chan<- prometheus.Metric) {
	for _, j := range p.r.Jobs() {
		j.collect(ch)
	}
}

func (j *Job) collect(ch chan<- prometheus.Metric) {
	j.mu.Lock()
	defer j.mu.Unlock()
	info := j.Info
	labels := []string{info.ID, info.Kind, info.Shard, strconv.Itoa(info.Tier)}
	gauge := func(d *prometheus.Desc, v float64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append(append([]string(nil), labels...), extra...)...)
	}
	for name, part := range j.parts {
		pl := append(append([]string(nil), labels...), name)
		counter := func(d *prometheus.Desc, key string, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(part.Counters[key]), append(append([]string(nil), pl...), extra...)...)
		}
		counter(descRecords, Records)
		counter(descBytes, Bytes)
		counter(descDeadLetters, DeadLetters)
		counter(descRetries, Retries)
		counter(descFiltered, Filtered)
		if info.Kind == "cdc" {
			for _, op := range cdcOps {
				counter(descEvents, op, op)
			}
		}
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(part.Lag), pl...)
		if !part.LastRecord.IsZero() {
			ch <- prometheus.MustNewConstMetric(descLastRecord, prometheus.GaugeValue, float64(part.LastRecord.UnixNano())/1e9, pl...)
		}
		if part.Estimate > 0 {
			ch <- prometheus.MustNewConstMetric(descProgress, prometheus.GaugeValue, float64(part.Done), append(pl, "done")...)
			ch <- prometheus.MustNewConstMetric(descProgress, prometheus.GaugeValue, float64(part.Estimate), append(pl, "estimate")...)
			ch <- prometheus.MustNewConstMetric(descLoadRate, prometheus.GaugeValue, part.RowsPerSec, pl...)
		}
	}
	buckets := map[float64]uint64{}
	var cum uint64
	for i, b := range Buckets {
		cum += uint64(j.buckets[i])
		buckets[b.Seconds()] = cum
	}
	all := j.total.lat.since()
	ch <- prometheus.MustNewConstHistogram(descLatency, cum+uint64(j.buckets[len(Buckets)]), sumSeconds(all), buckets, labels...)
	gauge(descBudget, info.Budget.D().Seconds())
	gauge(descWithin, share(j.total.within, count(all)))
	ch <- prometheus.MustNewConstMetric(descWithinTotal, prometheus.CounterValue, float64(j.total.within), labels...)
	if !j.heartbeat.IsZero() {
		gauge(descHeartbeat, float64(j.heartbeat.UnixNano())/1e9)
	}
	for _, s := range []string{StateStarting, StateRunning, StateWaiting, StateStandby, StateError, StateStopped} {
		gauge(descState, boolFloat(j.state == s), s)
	}
	c := j.compliance()
	for _, s := range []string{Healthy, AtRisk, Breaching} {
		gauge(descCompliance, boolFloat(c == s), s)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
