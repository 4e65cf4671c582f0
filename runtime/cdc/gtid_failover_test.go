package cdc

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/cdcstate"
	"github.com/ferry-pipelines/ferry/runtime/checkpoint"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
)

// TestGTIDFailover streams a table from a primary, stops the job, writes
// on, fails over to the replica (the primary killed) and starts the same
// job against the replica: it resumes from the checkpoint's GTID set, then
// (after a crash) from the replica's own position, and every row version
// written on either server is in Kafka once, in order.
// Pointed back at the old primary, which lacks the replica's transactions,
// the job is refused, and so it is, with the fix, from a checkpoint
// without a GTID set.
func TestGTIDFailover(t *testing.T) {
	w := newWorld(t)
	replica := devtest.MariaDBReplica(t, w.db, devenv.MariaDBOptions{})
	createVersioned(t, w.db, "trading.fills")
	pj := w.job(table("trading.fills", "no_data", 1))
	r := w.start(pj)
	vw := startVersionWriter(t, w.db, "trading.fills")
	time.Sleep(500 * time.Millisecond)
	// The replica's binlog files and offsets now differ from the
	// primary's, as they do on real servers.
	if err := replica.Exec("FLUSH BINARY LOGS"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	r.stop(t)
	time.Sleep(300 * time.Millisecond) // written while the job is down
	n := vw.finish()
	if err := replica.CatchUp(w.db, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The failover: the primary dies, the replica is promoted.
	if err := w.db.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := replica.Exec("STOP SLAVE"); err != nil {
		t.Fatal(err)
	}
	primary := w.db
	w.db = replica
	pj.CDC.MySQL.Address = replica.Addr()
	r = w.start(pj)
	vw = startVersionWriter(t, replica, "trading.fills")
	// A crash once the checkpoint is the replica's: the job goes on by
	// the replica's own file and offset.
	waitServer(t, w, pj.ID, 2)
	time.Sleep(300 * time.Millisecond)
	r.crash()
	r = w.start(pj)
	time.Sleep(500 * time.Millisecond)
	n += vw.finish()
	w.waitCaughtUpJob(pj.ID, nil)
	r.stop(t)
	events := checkVersions(t, w, "trading.fills")
	t.Logf("%d writes, %d row versions checked across the failover", n, events)

	if err := primary.Restart(); err != nil {
		t.Fatal(err)
	}
	pj.CDC.MySQL.Address = primary.Addr()
	st := waitServer(t, w, pj.ID, 2)
	lead := "cdc:trading-db: the checkpoint is at " + st.Position.String() + " of server_id 2, but " + primary.Addr() + " is server_id 1"
	err := runOnce(t, w, pj)
	pos, qerr := primary.Query("SELECT @@gtid_binlog_pos")
	if qerr != nil {
		t.Fatal(qerr)
	}
	want := lead + ", whose binlog lacks transactions already in Kafka (the checkpoint's GTID set " + st.GTID + " is not within its " + pos[0][0] + "): a replica behind its primary, or not a replica of it; let it catch up, or point mysql.address at a server that has them"
	if err == nil || err.Error() != want {
		t.Fatalf("Run on the old primary = %v\nwant %s", err, want)
	}

	st.GTID = ""
	saveState(t, w, pj.ID, st)
	want = lead + " and the checkpoint has no GTID set to resume from on another server; that needs GTIDs: gtid_mode=ON on MySQL 8 (MariaDB always has them) and log_slave_updates=ON on the replica; or point mysql.address back at server_id 2"
	if err := runOnce(t, w, pj); err == nil || err.Error() != want {
		t.Fatalf("Run without a GTID set = %v\nwant %s", err, want)
	}
}

// waitServer waits for the job's checkpoint to be a position on the server
// with server_id id.
func waitServer(t *testing.T, w *world, job string, id uint32) *cdcstate.State {
	t.Helper()
	opts, _ := kafkaconn.Options(w.plan.Datacenters["dc1"])
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := loadState(ctx, opts, job)
		cancel()
		if err == nil && st != nil && st.ServerID == id {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint not of server_id %d after 30s: %+v, %v", id, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runOnce runs the job and returns the error it ends with.
func runOnce(t *testing.T, w *world, pj plan.Job) error {
	t.Helper()
	j, err := New(&executor.Env{Plan: w.plan, Logger: quietLogger(), Metrics: w.reg.Job(pj)}, pj)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return j.Run(ctx)
}

// saveState writes a checkpoint as the job would.
func saveState(t *testing.T, w *world, job string, st *cdcstate.State) {
	t.Helper()
	opts, _ := kafkaconn.Options(w.plan.Datacenters["dc1"])
	cl, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, checkpoint.Record(job, cdcstate.Key, st.Encode())).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
