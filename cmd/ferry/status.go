package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/statusapi"
)

// DefaultHTTP is where `ferry status` looks for an executor when --http is
// not given; `make demo` runs its executor there.
const DefaultHTTP = "127.0.0.1:7310"

func statusCmd() *cobra.Command {
	var addrs []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--http ADDR]...",
		Short: "Show the running jobs: shard, state, throughput, lag, latency against the budget",
		Long: `Status asks one or more executors (--http, repeatable; default ` + DefaultHTTP + `)
for their jobs and prints a table: job, kind, shard, process and partitions,
tier, state, records/s, lag, p50/p99/max latency in ms, the budget and the
compliance (healthy, at_risk: p99 over budget, breaching: more than 1% of
records over budget). Each CDC table's counters follow (creates, updates,
deletes, rows loaded, filtered, failed, p99 latency, last event), then the
initial loads: rows done of the estimated total, rows/s and the time still
needed at that rate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var all []metrics.Status
			for _, addr := range addrs {
				jobs, err := fetchJobs(addr)
				if err != nil {
					return exit(1, err)
				}
				all = append(all, jobs.Jobs...)
			}
			sort.SliceStable(all, func(a, b int) bool { return all[a].ID < all[b].ID })
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(all)
			}
			printStatus(cmd.OutOrStdout(), all)
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&addrs, "http", []string{DefaultHTTP}, "executor HTTP `ADDR` (host:port, or a URL such as https://host:port); repeat for several processes")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the jobs as JSON")
	return cmd
}

func fetchJobs(addr string) (*statusapi.Jobs, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	base, err := api.BaseURL(addr)
	if err != nil {
		return nil, err
	}
	resp, err := c.Get(base + "/v1/jobs")
	var untrusted *tls.CertificateVerificationError
	switch {
	case errors.As(err, &untrusted):
		return nil, fmt.Errorf("%s: the executor's certificate is not trusted: %v; for a private CA, set SSL_CERT_FILE to its certificate", addr, untrusted.Err)
	case err != nil:
		return nil, fmt.Errorf("no executor answers at %s (start one with `ferry run --http ADDR`): %v", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/v1/jobs: %s: %s", addr, resp.Status, strings.TrimSpace(string(body)))
	}
	var jobs statusapi.Jobs
	if err := json.Unmarshal(body, &jobs); err != nil {
		return nil, fmt.Errorf("%s/v1/jobs: %v", addr, err)
	}
	return &jobs, nil
}

func printStatus(w io.Writer, jobs []metrics.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tKIND\tSHARD\tPROCESS\tPARTITIONS\tTIER\tSTATE\tREC/S\tLAG\tP50 MS\tP99 MS\tMAX MS\tBUDGET MS\tWITHIN\tCOMPLIANCE")
	for _, s := range jobs {
		state := s.State
		if s.Error != "" {
			state += ": " + s.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%.1f\t%d\t%.1f\t%.1f\t%.1f\t%.0f\t%.2f%%\t%s\n",
			s.ID, s.Kind, s.Shard, s.Process, partitionList(s.Partitions), s.Tier, state, s.RecordsPerSec, s.Lag,
			s.Latency.P50, s.Latency.P99, s.Latency.Max, s.BudgetMs, 100*s.WithinBudget, s.Compliance)
	}
	tw.Flush()
	printTables(w, jobs)
	printLoads(w, jobs)
	printPartErrors(w, jobs)
}

// printPartErrors prints, last, the parts a job cannot serve while it
// serves the others (a CDC table whose load cannot go on), one line each.
func printPartErrors(w io.Writer, jobs []metrics.Status) {
	eachPart(jobs, func(_ metrics.Status, p metrics.PartStatus) bool { return p.Error != "" }, func(first bool, s metrics.Status, name string, p metrics.PartStatus) {
		if first {
			fmt.Fprintln(w)
			fmt.Fprintln(w, "FAILING")
		}
		fmt.Fprintf(w, "%s %s: %s\n", s.ID, name, p.Error)
	})
}

// printTables prints each CDC table's counters after the jobs: the
// changes by kind, the rows loaded, those filtered and those that failed
// (dead-lettered), its p99 latency and its last event.
func printTables(w io.Writer, jobs []metrics.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	eachPart(jobs, func(s metrics.Status, _ metrics.PartStatus) bool { return s.Kind == "cdc" }, func(first bool, s metrics.Status, name string, p metrics.PartStatus) {
		if first {
			fmt.Fprintln(w)
			fmt.Fprintln(tw, "CDC TABLE\tTABLE\tCREATE\tUPDATE\tDELETE\tREAD\tFILTERED\tFAILED\tP99 MS\tLAST EVENT")
		}
		last := "-"
		if p.LastRecord != nil {
			last = p.LastRecord.UTC().Format(time.RFC3339)
		}
		c := p.Counters
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t%s\n", s.ID, name, c[metrics.Creates], c[metrics.Updates], c[metrics.Deletes],
			c[metrics.SnapshotRead], c[metrics.Filtered], c[metrics.Failed], p.Latency.P99, last)
	})
	tw.Flush()
}

// printLoads prints the CDC initial loads, running or done, after the jobs:
// rows done of the estimate, the rate and the time still needed at it.
func printLoads(w io.Writer, jobs []metrics.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	eachPart(jobs, func(_ metrics.Status, p metrics.PartStatus) bool { return p.Estimate > 0 }, func(first bool, s metrics.Status, name string, p metrics.PartStatus) {
		if first {
			fmt.Fprintln(w)
			fmt.Fprintln(tw, "INITIAL LOAD\tTABLE\tROWS\tESTIMATE\tDONE\tROWS/S\tETA")
		}
		eta := "-"
		switch {
		case p.Done >= p.Estimate:
			eta = "done"
		case p.ETASeconds > 0:
			eta = (time.Duration(p.ETASeconds * float64(time.Second))).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f%%\t%.0f\t%s\n", s.ID, name, p.Done, p.Estimate,
			100*float64(min(p.Done, p.Estimate))/float64(p.Estimate), p.RowsPerSec, eta)
	})
	tw.Flush()
}

// eachPart calls fn for the parts that keep admits, job by job in order and
// by part name within a job; first is true for the first call.
func eachPart(jobs []metrics.Status, keep func(metrics.Status, metrics.PartStatus) bool, fn func(first bool, s metrics.Status, name string, p metrics.PartStatus)) {
	first := true
	for _, s := range jobs {
		names := make([]string, 0, len(s.Parts))
		for name, p := range s.Parts {
			if keep(s, p) {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, name := range names {
			fn(first, s, name, s.Parts[name])
			first = false
		}
	}
}

func partitionList(parts []int32) string {
	if len(parts) == 0 {
		return "-"
	}
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ",")
}
