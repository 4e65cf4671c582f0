package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-pipelines/ferry/compiler/observe"
	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
)

// TestAlertsWithPrometheus runs ferry with a Tier 1 and a Tier 2 mirror and
// a CDC source, and a real Prometheus (Debian's prometheus package) that
// scrapes it every second with the rules `ferry compile --alerts` writes
// (Tier 1 alerts after 2 s, set in the definitions). Commits in the target
// are then slowed past the Tier 1 budget (kfake latency): the Tier 1 job's
// at-risk alert goes pending, then firing, and resolves once the target is
// fast again. Every query of `ferry compile --dashboard` is evaluated by
// the same Prometheus and returns series of the plan's jobs.
func TestAlertsWithPrometheus(t *testing.T) {
	promBin := devtest.Tool(t, "prometheus")
	if _, _, err := devenv.MariaDBBinaries(); err != nil {
		t.Skip(err)
	}
	pair := devtest.Pair(t)
	db := devtest.MariaDB(t, devenv.MariaDBOptions{})
	if err := db.Exec("CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(20))",
		"INSERT INTO shop.orders VALUES (1, 'before'), (2, 'before')"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "pipelines.cue", fmt.Sprintf(`package pipelines

datacenters: {
	dc1: kafka: brokers: [%q]
	dc2: kafka: brokers: [%q]
}
alerts: tiers: "1": {atRiskFor: "2s", breachingFor: "2s"}
mirrors: {
	"fast.events": {partitions: 1, tier: 1}
	"slow.events": {partitions: 1, tier: 2}
}
cdc: shop: {
	mysql: {address: %q, user: %q, password: env: "SHOP_PASSWORD", serverID: 5401}
	datacenter: "dc1"
	topicPrefix: "shop"
	tables: "shop.orders": {tier: 2, snapshot: "initial"}
}
`, pair.DC1.Addr(), pair.DC2.Addr(), db.Addr(), devenv.FerryUser))
	env := []string{"SHOP_PASSWORD=" + devenv.FerryPassword}
	t.Setenv("SHOP_PASSWORD", devenv.FerryPassword)
	for _, out := range []struct{ flag, file string }{{"--alerts", "rules.yaml"}, {"--dashboard", "dashboard.json"}} {
		if r := ferry(t, dir, "compile", ".", out.flag, "-o", out.file); r.code != 0 {
			t.Fatalf("ferry compile %s: exit %d\n%s", out.flag, r.code, r.stderr)
		}
	}
	p := startFerry(t, dir, env, "run", ".")
	p.waitStates(t, 60*time.Second, func(st metrics.Status) bool { return st.State == metrics.StateRunning })
	prom := startPrometheus(t, promBin, dir, p.addr)

	// Traffic on both mirrors and the table, all along.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dc1 := kafkaClient(t, portOf(t, pair.DC1.Addr()))
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			for _, topic := range []string{"fast.events", "slow.events"} {
				dc1.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(i))}, nil)
			}
			_ = db.Exec(fmt.Sprintf("INSERT INTO shop.orders VALUES (%d, 'during') ON DUPLICATE KEY UPDATE note = 'again'", 3+i%50))
			time.Sleep(50 * time.Millisecond)
		}
	}()
	const job = "mirror:fast.events:dc1-dc2"
	prom.waitQuery(t, `ferry:records:rate1m{job="`+job+`"} > 0`, 60*time.Second)

	// Every dashboard query answers, with series of the plan's jobs.
	jobs := map[string]bool{}
	for id := range p.waitFor(t, time.Second, "jobs", func(map[string]metrics.Status) bool { return true }) {
		jobs[id] = true
	}
	prom.checkDashboard(t, filepath.Join(dir, "dashboard.json"), jobs)

	// Slow commits in dc2 past the Tier 1 budget.
	var slow atomic.Bool
	slow.Store(true)
	pair.DC2.Cluster.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		pair.DC2.Cluster.KeepControl()
		if slow.Load() {
			time.Sleep(400 * time.Millisecond)
		}
		return nil, nil, false
	})
	prom.waitAlert(t, "FerryTier1AtRisk", job, "pending", 60*time.Second)
	prom.waitAlert(t, "FerryTier1AtRisk", job, "firing", 30*time.Second)
	slow.Store(false)
	prom.waitAlert(t, "FerryTier1AtRisk", job, "", 150*time.Second)
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	var port int
	if _, err := fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &port); err != nil {
		t.Fatal(err)
	}
	return port
}

// promServer is a Prometheus started for a test.
type promServer struct{ addr string }

// startPrometheus starts Prometheus in dir, scraping the executor at
// target every second (honor_labels: ferry's metrics carry their own job
// label) with dir's rules.yaml, and waits until it is ready.
func startPrometheus(t *testing.T, bin, dir, target string) *promServer {
	t.Helper()
	writeFile(t, dir, "prometheus.yml", fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules.yaml]
scrape_configs:
  - job_name: ferry
    honor_labels: true
    static_configs: [{targets: [%q]}]
`, target))
	s := &promServer{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+s.addr, "--log.level=warn")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus:\n%s", logs)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + s.addr + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
	}
	t.Fatalf("prometheus not ready:\n%s", logs)
	return nil
}

// query evaluates an instant query and returns its series' labels.
func (s *promServer) query(expr string) ([]map[string]string, error) {
	resp, err := http.Get("http://" + s.addr + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s", r.Error)
	}
	out := make([]map[string]string, len(r.Data.Result))
	for i, x := range r.Data.Result {
		out[i] = x.Metric
	}
	return out, nil
}

// waitQuery waits until expr returns a series.
func (s *promServer) waitQuery(t *testing.T, expr string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if res, err := s.query(expr); err == nil && len(res) > 0 {
			return
		}
	}
	t.Fatalf("no series of %s after %s", expr, timeout)
}

// waitAlert waits until the alert of job is in state (pending or firing;
// "": no such alert, resolved).
func (s *promServer) waitAlert(t *testing.T, name, job, state string, timeout time.Duration) {
	t.Helper()
	last := ""
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		resp, err := http.Get("http://" + s.addr + "/api/v1/alerts")
		if err != nil {
			continue
		}
		var r struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil {
			continue
		}
		got := ""
		for _, a := range r.Data.Alerts {
			if a.Labels["alertname"] == name && a.Labels["job"] == job {
				got = a.State
			}
		}
		if got == state {
			return
		}
		last = got
	}
	t.Fatalf("alert %s of %s is %q after %s, want %q", name, job, last, timeout, state)
}

// checkDashboard evaluates every query of the dashboard, its variables
// set to all ($shard, $job) and a 1m rate window: each answers, and each
// graph but "Jobs not running" returns series, all of the plan's jobs.
func (s *promServer) checkDashboard(t *testing.T, file string, jobs map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var board observe.Board
	if err := json.Unmarshal(b, &board); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$shard", ".*", "$job", ".*", "$__rate_interval", "1m")
	n := 0
	for _, pn := range board.Panels {
		for _, tg := range pn.Targets {
			expr := vars.Replace(tg.Expr)
			var res []map[string]string
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
				if res, err = s.query(expr); err != nil {
					t.Fatalf("panel %q: %s: %v", pn.Title, expr, err)
				}
				if len(res) > 0 || pn.Title == "Jobs not running" || time.Now().After(deadline) {
					break
				}
			}
			if len(res) == 0 && pn.Title != "Jobs not running" {
				t.Errorf("panel %q: %s returns no series", pn.Title, expr)
			}
			for _, m := range res {
				if j, ok := m["job"]; ok && !jobs[j] {
					t.Errorf("panel %q: series of job %q, not a job of the plan", pn.Title, j)
				}
			}
			n++
		}
	}
	if n < 10 {
		t.Fatalf("the dashboard has %d queries", n)
	}
}
