package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// showLoads draws a progress bar on stderr for each CDC initial load the
// executor runs (rows done of the estimate, rows/s, time left), when
// stderr is a terminal, until ctx ends. The runtime only reports progress
// (metrics.Job.SetProgress); drawing it is the command's.
func showLoads(ctx context.Context, reg *metrics.Registry) {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return
	}
	bars := map[string]*progressbar.ProgressBar{}
	done := map[string]bool{}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, j := range reg.Jobs() {
			if j.Info.Kind != plan.KindCDC {
				continue
			}
			st := j.Status()
			for table, p := range st.Parts {
				key := st.ID + " " + table
				if p.Estimate == 0 || done[key] {
					continue
				}
				b := bars[key]
				if b == nil {
					b = progressbar.NewOptions64(p.Estimate,
						progressbar.OptionSetWriter(os.Stderr),
						progressbar.OptionSetDescription(table),
						progressbar.OptionShowCount(), progressbar.OptionShowIts(),
						progressbar.OptionSetItsString("rows"),
						progressbar.OptionThrottle(200*time.Millisecond),
						progressbar.OptionSetPredictTime(true))
					bars[key] = b
				}
				if total := max(p.Estimate, p.Done); total > b.GetMax64() {
					b.ChangeMax64(total)
				}
				_ = b.Set64(p.Done)
				if p.Done >= p.Estimate {
					_ = b.Finish()
					fmt.Fprintln(os.Stderr)
					delete(bars, key)
					done[key] = true
				}
			}
		}
	}
}
