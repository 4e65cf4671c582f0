// Package metrics keeps each running job's figures: counters, latency
// histograms against the job's tier budget (per job and per part: a
// partition of a mirror, a table of a CDC source), lag and state. The HTTP
// API, `ferry status`, Prometheus and the reporter that writes ferry.metrics
// all read from here, so every view shows the same numbers.
package metrics

import (
	"sort"
	"sync"
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// Counter names. Jobs may count others; these are the ones every view knows.
const (
	Records      = "records"       // records written to the target
	Bytes        = "bytes"         // their key and value bytes
	DeadLetters  = "dead_letters"  // records sent to ferry.dlq
	Retries      = "retries"       // retried transactions or requests
	Filtered     = "filtered"      // records skipped by rule (a mirrored record carrying ferry.origin, an excluded row)
	Creates      = "create"        // CDC: inserted rows
	Updates      = "update"        // CDC: updated rows
	Deletes      = "delete"        // CDC: deleted rows
	SnapshotRead = "snapshot_read" // CDC: rows read by the initial load
	Failed       = "failed"        // CDC: events that could not be converted
)

// States of a job.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateWaiting  = "waiting" // for a datacenter or a server that cannot be reached
	StateStandby  = "standby" // another process of the shard holds the job
	StateError    = "error"   // stopped on an error it retries later
	StateStopped  = "stopped"
)

// Compliance of a job with its budget.
const (
	Healthy   = "healthy"   // p99 within budget
	AtRisk    = "at_risk"   // p99 over budget, but at most 1% of records over
	Breaching = "breaching" // more than 1% of records over budget
)

// Job holds the figures of one job. All methods are safe for concurrent use.
type Job struct {
	// Info is the job's plan entry; read it through Status, or before the
	// job runs.
	Info    plan.Job
	started time.Time

	mu       sync.Mutex
	state    string
	err      string
	owner    string
	assigned []int32
	total    *Part
	parts    map[string]*Part
	// buckets count the job's records by Buckets, for Prometheus.
	buckets []int64
	// heartbeat is the newest heartbeat a CDC source read back from its
	// binlog: it moves while the source reads, traffic or not.
	heartbeat time.Time
	// partLatency keeps latency histograms per part as well as per job:
	// for the tables of a CDC source, each with its own tier, not for the
	// thousands of partitions of a mirror fleet (60 KiB each).
	partLatency bool
	lastReset   time.Time
	// reported holds the counters as of the last interval report, so the
	// next report carries what happened since.
	reported map[string]int64
	// lastCompliance is the judgment of the last complete interval, shown
	// while the current one has no records yet.
	lastCompliance string
}

// Part holds the figures of one partition or table of a job.
type Part struct {
	Counters   map[string]int64
	Lag        int64
	LastRecord time.Time
	Done       int64   // CDC initial load: rows done
	Estimate   int64   // CDC initial load: estimated rows in all
	RowsPerSec float64 // CDC initial load: rows/s since it (re)started
	Err        string  // why the part is not served (a CDC table's load), while the job's other parts are
	lat        *latencies
	within     int64 // records within budget since start
	intWithin  int64 // records within budget this interval
}

func newPart() *Part { return &Part{Counters: map[string]int64{}} }

func newJob(info plan.Job, owner string) *Job {
	now := time.Now()
	return &Job{Info: info, started: now, lastReset: now, state: StateStarting, owner: owner, total: newPart(), parts: map[string]*Part{},
		buckets: make([]int64, len(Buckets)+1), partLatency: info.Kind != plan.KindMirror}
}

func (j *Job) part(name string) *Part {
	p := j.parts[name]
	if p == nil {
		p = newPart()
		j.parts[name] = p
	}
	return p
}

// Observe records one record delivered to the target of part, with its
// end-to-end latency (target write acknowledged minus source time).
func (j *Job) Observe(part string, latency time.Duration, bytes int) {
	j.ObserveBudget(part, latency, bytes, 0)
}

// ObserveBudget is Observe against a part's own budget (a CDC table's tier
// may be looser than its source job's); 0 means the job's budget.
func (j *Job) ObserveBudget(part string, latency time.Duration, bytes int, budget time.Duration) {
	j.ObserveAll(part, budget, Sample{Latency: latency, Bytes: bytes})
}

// Sample is one record delivered to the target.
type Sample struct {
	Latency time.Duration
	Bytes   int
}

// ObserveAll records records delivered together (one transaction's) under
// one lock, against budget (0: the job's).
func (j *Job) ObserveAll(part string, budget time.Duration, samples ...Sample) {
	now := time.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	if budget == 0 {
		budget = j.Info.Budget.D()
	}
	for i, p := range [2]*Part{j.total, j.part(part)} {
		timed := i == 0 || j.partLatency
		if timed && p.lat == nil {
			p.lat = newLatencies()
		}
		bytes := int64(0)
		for _, s := range samples {
			if timed {
				p.lat.record(s.Latency)
				if s.Latency <= budget {
					p.within++
					p.intWithin++
				}
			}
			if i == 0 {
				j.buckets[bucketOf(s.Latency)]++
			}
			bytes += int64(s.Bytes)
		}
		p.Counters[Bytes] += bytes
		p.Counters[Records] += int64(len(samples))
		p.LastRecord = now
	}
}

// Count adds n to a counter of part (and of the job).
func (j *Job) Count(part, counter string, n int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.total.Counters[counter] += n
	j.part(part).Counters[counter] += n
}

// SetLag records how many records of part wait to be read.
func (j *Job) SetLag(part string, lag int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.part(part).Lag = max(lag, 0)
}

// SetProgress records a CDC initial load's progress of a table: rows done,
// the estimated total and the rate since the load (re)started.
func (j *Job) SetProgress(part string, done, estimate int64, rowsPerSec float64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.part(part)
	p.Done, p.Estimate, p.RowsPerSec = done, estimate, rowsPerSec
}

// SetPartError records why one part cannot be served while the job's
// others are (a CDC table that cannot be loaded, say); nil clears it.
func (j *Job) SetPartError(part string, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.part(part)
	p.Err = ""
	if err != nil {
		p.Err = err.Error()
	}
}

// SetHeartbeat records the newest heartbeat a CDC source read back from its
// binlog.
func (j *Job) SetHeartbeat(t time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.heartbeat = t
}

// SetState records the job's state and, for StateError and StateWaiting, why.
func (j *Job) SetState(state string, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.state = state
	j.err = ""
	if err != nil {
		j.err = err.Error()
	}
}

// SetAssigned records the partitions this process runs (mirror jobs shared
// by several processes of a shard).
func (j *Job) SetAssigned(parts []int32) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.assigned = append([]int32(nil), parts...)
	sort.Slice(j.assigned, func(a, b int) bool { return j.assigned[a] < j.assigned[b] })
}

// SetInfo replaces the job's plan entry after an update in place.
func (j *Job) SetInfo(info plan.Job) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.Info = info
}

// DropPart forgets a part, such as a partition another process took.
func (j *Job) DropPart(part string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.parts, part)
}
