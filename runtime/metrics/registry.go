package metrics

import (
	"sort"
	"sync"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// Registry holds the figures of every job this process runs.
type Registry struct {
	process string

	mu   sync.Mutex
	jobs map[string]*Job
}

// NewRegistry returns an empty registry for the process named process (as
// `ferry status` shows it).
func NewRegistry(process string) *Registry {
	return &Registry{process: process, jobs: map[string]*Job{}}
}

// Process is the name of this process.
func (r *Registry) Process() string { return r.process }

// Job returns the figures of a job, starting them afresh when the job is new
// or its plan entry changed.
func (r *Registry) Job(info plan.Job) *Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := r.jobs[info.ID]
	if j == nil {
		j = newJob(info, r.process)
		r.jobs[info.ID] = j
	}
	return j
}

// Remove forgets a job that stopped for good.
func (r *Registry) Remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.jobs, id)
}

// Lookup returns a job's figures, or nil.
func (r *Registry) Lookup(id string) *Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.jobs[id]
}

// Jobs returns every job, sorted by ID.
func (r *Registry) Jobs() []*Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Job, 0, len(r.jobs))
	for _, j := range r.jobs {
		out = append(out, j)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Info.ID < out[b].Info.ID })
	return out
}
