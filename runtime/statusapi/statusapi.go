// Package statusapi serves an executor's status over HTTP: /healthz, Prometheus
// metrics at /metrics, the running jobs at /v1/jobs and /v1/jobs/{id}, and
// whatever other handlers the process mounts (the control API).
package statusapi

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// Jobs is what /v1/jobs serves.
type Jobs struct {
	Process string           `json:"process"`
	Jobs    []metrics.Status `json:"jobs"`
}

// Handler returns the API's handler over the jobs of r. Extra handlers are
// mounted by pattern ("/v1/mirrors/", say).
func Handler(r *metrics.Registry, extra map[string]http.Handler) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewPrometheus(r), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/jobs", func(w http.ResponseWriter, _ *http.Request) {
		out := Jobs{Process: r.Process(), Jobs: []metrics.Status{}}
		for _, j := range r.Jobs() {
			out.Jobs = append(out.Jobs, j.Status())
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /v1/jobs/{id}", func(w http.ResponseWriter, req *http.Request) {
		j := r.Lookup(req.PathValue("id"))
		if j == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no job " + req.PathValue("id") + " runs in this process"})
			return
		}
		writeJSON(w, http.StatusOK, j.Status())
	})
	for pattern, h := range extra {
		mux.Handle(pattern, h)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
