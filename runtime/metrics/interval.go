package metrics

import (
	"time"
)

// Report is one job's figures over one interval: the JSON object the
// reporter writes to ferry.metrics, one per job per interval. Counts are of
// the interval; the *_total fields and within_budget_total are since the job
// started. docs/operating.md documents it with a ClickHouse table that ingests it.
type Report struct {
	Time              time.Time `json:"time"`
	Job               string    `json:"job"`
	Kind              string    `json:"kind"`
	Shard             string    `json:"shard"`
	Tier              int       `json:"tier"`
	Process           string    `json:"process"`
	State             string    `json:"state"`
	IntervalMs        int64     `json:"interval_ms"`
	Records           int64     `json:"records"`
	Bytes             int64     `json:"bytes"`
	DeadLetters       int64     `json:"dead_letters"`
	Retries           int64     `json:"retries"`
	Filtered          int64     `json:"filtered"`
	Lag               int64     `json:"lag"`
	P50Ms             float64   `json:"p50_ms"`
	P99Ms             float64   `json:"p99_ms"`
	MaxMs             float64   `json:"max_ms"`
	BudgetMs          float64   `json:"budget_ms"`
	WithinBudget      float64   `json:"within_budget"`
	Compliance        string    `json:"compliance"`
	RecordsTotal      int64     `json:"records_total"`
	WithinBudgetTotal float64   `json:"within_budget_total"`
}

// Interval returns the job's report for the interval that ends now and
// starts the next one: interval latencies and counts begin again from zero.
func (j *Job) Interval(now time.Time) Report {
	j.mu.Lock()
	defer j.mu.Unlock()
	budget := j.Info.Budget.D()
	t := j.total
	delta := func(name string) int64 { return t.Counters[name] - j.reported[name] }
	r := Report{
		Time:              now.UTC(),
		Job:               j.Info.ID,
		Kind:              j.Info.Kind,
		Shard:             j.Info.Shard,
		Tier:              j.Info.Tier,
		Process:           j.owner,
		State:             j.state,
		IntervalMs:        now.Sub(j.lastReset).Milliseconds(),
		Records:           count(t.lat.current()),
		Bytes:             delta(Bytes),
		DeadLetters:       delta(DeadLetters),
		Retries:           delta(Retries),
		Filtered:          delta(Filtered),
		BudgetMs:          float64(budget) / float64(time.Millisecond),
		WithinBudget:      share(t.intWithin, count(t.lat.current())),
		Compliance:        compliance(t, budget),
		RecordsTotal:      count(t.lat.since()),
		WithinBudgetTotal: share(t.within, count(t.lat.since())),
	}
	lat := summarize(t.lat.current())
	r.P50Ms, r.P99Ms, r.MaxMs = lat.P50, lat.P99, lat.Max
	for _, p := range j.parts {
		r.Lag += p.Lag
	}
	j.lastCompliance = r.Compliance
	j.reported = copyCounters(t.Counters)
	j.lastReset = now
	for _, p := range append(j.partList(), t) {
		if h := p.lat.current(); h != nil {
			h.Clear()
		}
		p.intWithin = 0
	}
	return r
}

func (j *Job) partList() []*Part {
	out := make([]*Part, 0, len(j.parts))
	for _, p := range j.parts {
		out = append(out, p)
	}
	return out
}
