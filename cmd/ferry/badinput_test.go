package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/statusapi"
)

// TestNewerPlanRefused: a plan written by a newer ferry is refused, naming
// its version, by every command that reads a plan file.
func TestNewerPlanRefused(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "newer.json", `{"version": 2, "jobs": []}`)
	want := "newer.json: plan version 2 is newer than this ferry understands (version 1): upgrade ferry\n"
	pipelines := filepath.Join(repoRoot, "pipelines")
	for _, args := range [][]string{
		{"run", "--plan", "newer.json"},
		{"compile", pipelines, "--from", "newer.json"},
	} {
		t.Run(args[0], func(t *testing.T) {
			ferry(t, dir, args...).want(t, 1, ptr(""), &want)
		})
	}
}

// TestRunWaitsForUnreachableDatacenter starts `ferry run` on a plan whose
// datacenters listen nowhere: the process keeps running, its jobs show
// state waiting with the datacenter named, and once the clusters start on
// those ports the jobs run and mirror.
func TestRunWaitsForUnreachableDatacenter(t *testing.T) {
	ports := []int{freePort(t), freePort(t)}
	dir := t.TempDir()
	writeFile(t, dir, "pipelines.cue", fmt.Sprintf(`package pipelines

datacenters: {
	dc1: kafka: brokers: ["127.0.0.1:%d"]
	dc2: kafka: brokers: ["127.0.0.1:%d"]
}
mirrors: "late.events": {partitions: 1, tier: 1}
`, ports[0], ports[1]))
	p := startFerry(t, dir, nil, "run", ".")

	p.waitStates(t, 30*time.Second, func(st metrics.Status) bool {
		return st.State == metrics.StateWaiting && strings.HasPrefix(st.Error, "datacenter dc") && strings.Contains(st.Error, "cannot be reached")
	})
	time.Sleep(time.Second)
	if !p.alive() {
		t.Fatalf("ferry run exited while its datacenters were away:\n%s", p.logs)
	}
	if out := ferry(t, dir, "status", "--http", p.addr); out.code != 0 || !strings.Contains(out.stdout, "waiting") {
		t.Fatalf("ferry status (exit %d) does not show the jobs waiting:\n%s%s", out.code, out.stdout, out.stderr)
	}

	for i, name := range []string{"dc1", "dc2"} {
		k, err := devenv.StartKafka(name, ports[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(k.Close)
	}
	p.waitStates(t, 60*time.Second, func(st metrics.Status) bool { return st.State == metrics.StateRunning })
	dc1 := kafkaClient(t, ports[0], kgo.DefaultProduceTopic("late.events"))
	if err := dc1.ProduceSync(context.Background(), &kgo.Record{Value: []byte("after the wait")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dc2 := kafkaClient(t, ports[1], kgo.ConsumeTopics("late.events"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fs := dc2.PollFetches(ctx)
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "after the wait" {
		t.Fatalf("dc2 holds %d records (%v), want the one written to dc1", len(recs), fs.Errors())
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func writeFile(t *testing.T, dir, name, src string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

func kafkaClient(t *testing.T, port int, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(fmt.Sprintf("127.0.0.1:%d", port))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// process is a ferry process serving its HTTP API, with everything it
// printed.
type process struct {
	cmd  *exec.Cmd
	addr string
	logs *syncBuffer
	done chan struct{}
}

// startFerry starts ferry with args plus --http on a free loopback port,
// in dir with env added to its environment, and waits until it answers.
// It is interrupted when the test ends.
func startFerry(t *testing.T, dir string, env []string, args ...string) *process {
	t.Helper()
	p := &process{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(ferryBin, append(args, "--http", p.addr)...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("ferry %v:\n%s", args, p.logs)
		}
	})
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + p.addr + "/healthz"); err == nil {
			resp.Body.Close()
			return p
		}
		if !p.alive() {
			break
		}
	}
	t.Fatalf("ferry %v did not answer on %s:\n%s", args, p.addr, p.logs)
	return nil
}

// stop interrupts the process and waits for it to end.
func (p *process) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// get returns the body of GET path.
func (p *process) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

// waitStates waits until every job of the process satisfies ok.
func (p *process) waitStates(t *testing.T, timeout time.Duration, ok func(metrics.Status) bool) {
	t.Helper()
	p.waitFor(t, timeout, "every job in the state wanted", func(jobs map[string]metrics.Status) bool {
		for _, st := range jobs {
			if !ok(st) {
				return false
			}
		}
		return len(jobs) > 0
	})
}

// waitFor waits until the process's jobs, by ID, satisfy cond, and returns
// them.
func (p *process) waitFor(t *testing.T, timeout time.Duration, what string, cond func(map[string]metrics.Status) bool) map[string]metrics.Status {
	t.Helper()
	var jobs map[string]metrics.Status
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var list statusapi.Jobs
		if err := json.Unmarshal([]byte(p.get(t, "/v1/jobs")), &list); err != nil {
			t.Fatal(err)
		}
		jobs = map[string]metrics.Status{}
		for _, st := range list.Jobs {
			jobs[st.ID] = st
		}
		if cond(jobs) {
			return jobs
		}
	}
	t.Fatalf("not reached within %v: %s\njobs: %+v\nlogs:\n%s", timeout, what, jobs, p.logs)
	return nil
}

// waitJobs waits until the process runs exactly the jobs (IDs separated
// by spaces).
func (p *process) waitJobs(t *testing.T, want string) {
	t.Helper()
	p.waitFor(t, 20*time.Second, "jobs "+want, func(jobs map[string]metrics.Status) bool {
		return strings.Join(slices.Sorted(maps.Keys(jobs)), " ") == want
	})
}

// syncBuffer is a bytes.Buffer written by a process's two pipes at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
