package cdc

import (
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestKill9 runs `ferry run --plan` as a process and kills it with SIGKILL
// ten times, while it streams one table and loads another under writes;
// then every row version is in Kafka once and in order, no row is read
// twice by the load, and the loaded topic folded by key equals the table.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ferry binary")
	}
	w := newWorld(t)
	createVersioned(t, w.db, "trading.fills")
	rows := 20_000
	if raceEnabled {
		rows = 6_000 // the in-process Kafka is several times slower
	}
	loadRows(t, w.db, "trading.orders", rows)
	pj := w.job(table("trading.fills", "no_data", 1), table("trading.orders", "initial", 2))
	pj.CDC.Snapshot = schema.SnapshotSettings{ChunkSize: 1000, Parallelism: 3}
	planFile := w.planFile(pj)
	// A stable instance name: a restarted process takes its place in the
	// shard at once instead of waiting for the killed one to time out.
	run := func() *exec.Cmd { return runFerry(t, planFile, "--instance", "kill9") }
	began := time.Now()
	opts, _ := kafkaconn.Options(w.plan.Datacenters["dc1"])
	// The first run records where capture begins; writes start after it.
	first := run()
	for deadline := time.Now().Add(time.Minute); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, _ := loadState(ctx, opts, pj.ID)
		cancel()
		if st != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint after 1m")
		}
		time.Sleep(50 * time.Millisecond)
	}
	vw := startVersionWriter(t, w.db, "trading.fills")
	ow := startWriter(t, w.db, "trading.orders", rows+1000)
	for i := 0; i < 10; i++ {
		cmd := first
		if i > 0 {
			cmd = run()
		}
		time.Sleep(time.Duration(400+i*137) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	cmd := run()
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// Until the load is done.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := loadState(ctx, opts, pj.ID)
		cancel()
		if err == nil && st != nil && st.Tables["trading.orders"] != nil && st.Tables["trading.orders"].Snapshot != nil && st.Tables["trading.orders"].Snapshot.Done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("load not done after 3m: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("load done after %v", time.Since(began))
	n := vw.finish()
	ow.finish()
	w.waitCaughtUpJob(pj.ID, nil)
	t.Logf("caught up after %v", time.Since(began))
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	t.Logf("stopped after %v", time.Since(began))
	events := checkVersions(t, w, "trading.fills")
	loaded := checkLoadedOnce(t, w, "trading.orders")
	t.Logf("10 kills; %d writes, %d row versions checked, %d rows loaded", n, events, loaded)
}
