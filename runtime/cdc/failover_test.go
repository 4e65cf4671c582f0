package cdc

import (
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/statusapi"
)

// TestFailover runs a CDC source in a shard of two `ferry run` processes:
// exactly one captures (the other stands by); when the capturing one is
// killed with SIGKILL, the other takes the source over, and every row
// version written throughout is in Kafka once, in order.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ferry binary")
	}
	w := newWorld(t)
	createVersioned(t, w.db, "trading.fills")
	pj := w.job(table("trading.fills", "initial", 1))
	planFile := w.planFile(pj)
	type proc struct {
		cmd  *exec.Cmd
		addr string
	}
	start := func(name string) *proc {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return &proc{cmd: runFerry(t, planFile, "--instance", name, "--http", addr), addr: addr}
	}
	procs := []*proc{start("a"), start("b")}
	holder := func() (running, standby int) {
		running, standby = -1, -1
		for i, p := range procs {
			switch stateAt(p.addr, pj.ID) {
			case metrics.StateRunning:
				running = i
			case metrics.StateStandby:
				standby = i
			}
		}
		return running, standby
	}
	waitHolder := func(want int) int {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if r, s := holder(); r >= 0 && (want < 0 || r == want) && (s >= 0 || want >= 0) {
				return r
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no process holds %s as expected", pj.ID)
		return -1
	}
	first := waitHolder(-1)
	vw := startVersionWriter(t, w.db, "trading.fills")
	time.Sleep(2 * time.Second)
	_ = procs[first].cmd.Process.Signal(syscall.SIGKILL)
	_ = procs[first].cmd.Wait()
	other := 1 - first
	waitHolder(other) // the survivor takes over within the lease session
	time.Sleep(2 * time.Second)
	n := vw.finish()
	w.waitCaughtUpJob(pj.ID, nil)
	events := checkVersions(t, w, "trading.fills")
	t.Logf("failover from process %d to %d; %d writes, %d row versions checked", first, other, n, events)
}

// stateAt asks the executor at addr for a job's state ("" if unknown).
func stateAt(addr, job string) string {
	resp, err := http.Get("http://" + addr + "/v1/jobs")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var jobs statusapi.Jobs
	if json.NewDecoder(resp.Body).Decode(&jobs) != nil {
		return ""
	}
	for _, j := range jobs.Jobs {
		if j.ID == job {
			return j.State
		}
	}
	return ""
}
