package metrics

import (
	"sort"
	"time"
)

// Status is a job's figures at one moment: what /v1/jobs serves and `ferry
// status` prints.
type Status struct {
	ID             string                `json:"id"`
	Kind           string                `json:"kind"`
	Shard          string                `json:"shard"`
	Tier           int                   `json:"tier"`
	BudgetMs       float64               `json:"budgetMs"`
	State          string                `json:"state"`
	Error          string                `json:"error,omitempty"`
	Process        string                `json:"process"`
	Partitions     []int32               `json:"partitions,omitempty"`
	Started        time.Time             `json:"started"`
	RecordsPerSec  float64               `json:"recordsPerSec"`
	Lag            int64                 `json:"lag"`
	Latency        Latency               `json:"latency"`
	WithinBudget   float64               `json:"withinBudget"`   // share of records within budget since start
	IntervalWithin float64               `json:"intervalWithin"` // share within budget in the current interval
	Compliance     string                `json:"compliance"`     // healthy, at_risk or breaching
	Counters       map[string]int64      `json:"counters"`
	LastRecord     *time.Time            `json:"lastRecord,omitempty"`
	Parts          map[string]PartStatus `json:"parts,omitempty"`
}

// PartStatus is the figures of one partition or table.
type PartStatus struct {
	Counters     map[string]int64 `json:"counters"`
	Lag          int64            `json:"lag"`
	Latency      Latency          `json:"latency"`
	WithinBudget float64          `json:"withinBudget"`
	LastRecord   *time.Time       `json:"lastRecord,omitempty"`
	Done         int64            `json:"done,omitempty"`
	Estimate     int64            `json:"estimate,omitempty"`
	RowsPerSec   float64          `json:"rowsPerSec,omitempty"`
	// ETASeconds is the time an initial load still needs at its rate.
	ETASeconds float64 `json:"etaSeconds,omitempty"`
	// Error says why the part is not served while the job's others are.
	Error string `json:"error,omitempty"`
}

// Latency is a histogram's summary in milliseconds.
type Latency struct {
	P50   float64 `json:"p50Ms"`
	P99   float64 `json:"p99Ms"`
	Max   float64 `json:"maxMs"`
	Count int64   `json:"count"`
}

// eta is the seconds an initial load still needs at its rate; 0 when it is
// done or has no rate yet.
func eta(p *Part) float64 {
	if p.RowsPerSec <= 0 || p.Done >= p.Estimate {
		return 0
	}
	return float64(p.Estimate-p.Done) / p.RowsPerSec
}

func share(within, total int64) float64 {
	if total == 0 {
		return 1
	}
	return float64(within) / float64(total)
}

// compliance judges the job: the current interval when it has records,
// else the last complete interval, else the whole run.
func (j *Job) compliance() string {
	if count(j.total.lat.current()) == 0 && j.lastCompliance != "" {
		return j.lastCompliance
	}
	return compliance(j.total, j.Info.Budget.D())
}

// compliance judges the current interval when it has records, else the
// whole run: breaching when more than 1% of records were over budget,
// at_risk when the p99 was.
func compliance(p *Part, budget time.Duration) string {
	h, within := p.lat.current(), p.intWithin
	if count(h) == 0 {
		h, within = p.lat.since(), p.within
	}
	switch {
	case count(h) == 0:
		return Healthy
	case share(within, count(h)) < 0.99:
		return Breaching
	case time.Duration(summarize(h).P99*float64(time.Millisecond)) > budget:
		return AtRisk
	}
	return Healthy
}

func copyCounters(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Status returns the job's figures now.
func (j *Job) Status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	budget := j.Info.Budget.D()
	elapsed := time.Since(j.lastReset).Seconds()
	s := Status{
		ID:             j.Info.ID,
		Kind:           j.Info.Kind,
		Shard:          j.Info.Shard,
		Tier:           j.Info.Tier,
		BudgetMs:       float64(budget) / float64(time.Millisecond),
		State:          j.state,
		Error:          j.err,
		Process:        j.owner,
		Partitions:     append([]int32(nil), j.assigned...),
		Started:        j.started,
		Latency:        summarize(j.total.lat.since()),
		WithinBudget:   share(j.total.within, count(j.total.lat.since())),
		IntervalWithin: share(j.total.intWithin, count(j.total.lat.current())),
		Compliance:     j.compliance(),
		Counters:       copyCounters(j.total.Counters),
		LastRecord:     timePtr(j.total.LastRecord),
		Parts:          map[string]PartStatus{},
	}
	if elapsed > 0 {
		s.RecordsPerSec = float64(count(j.total.lat.current())) / elapsed
	}
	names := make([]string, 0, len(j.parts))
	for name := range j.parts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := j.parts[name]
		s.Lag += p.Lag
		s.Parts[name] = PartStatus{
			Counters:     copyCounters(p.Counters),
			Lag:          p.Lag,
			Latency:      summarize(p.lat.since()),
			WithinBudget: share(p.within, count(p.lat.since())),
			LastRecord:   timePtr(p.LastRecord),
			Done:         p.Done,
			Estimate:     p.Estimate,
			RowsPerSec:   p.RowsPerSec,
			ETASeconds:   eta(p),
			Error:        p.Err,
		}
	}
	return s
}
