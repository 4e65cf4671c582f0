package sink_test

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestKill9 runs the sink as a `ferry run --plan --shard sinks` process
// and kills it with SIGKILL ten times while the CDC source (in this
// process) streams an initial load and live writes; after a last start,
// `ferry verify` finds the tables equal: no change lost, none applied out
// of order.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ferry binary")
	}
	w := newWorld(t)
	const rows = 20_000
	w.ordersTable(rows)
	p := w.buildPlan(sinkTable{name: "trading.orders", snapshot: "initial", tier: 1})
	p.Shards = map[string]schema.Shard{"capture": {Tiers: []int{1, 2, 3, 4}}, "sinks": {Tiers: []int{1, 2, 3, 4}}}
	for i := range p.Jobs {
		p.Jobs[i].Shard = "capture"
		if p.Jobs[i].Kind == plan.KindSink {
			p.Jobs[i].Shard = "sinks"
		}
	}
	file := w.planFile(p)
	w.runShard(p, "capture")
	wr := w.startWriter(rows, 300)
	run := func() *os.Process {
		cmd := w.ferryCmd("run", "--plan", file, "--shard", "sinks", "--instance", "sink-test", "--log-level", "warn")
		if os.Getenv("FERRY_TEST_LOG") != "" {
			cmd.Stderr = os.Stderr
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go cmd.Wait() //nolint:errcheck // reaped; killed below
		return cmd.Process
	}
	applied := func() string {
		return w.pgScalar("SELECT COALESCE(max(next_offset), -1)::text FROM public.ferry_offsets")
	}
	var offsets []string
	for i := 0; i < 10; i++ {
		proc := run()
		time.Sleep(time.Duration(700+i*137) * time.Millisecond)
		_ = proc.Signal(syscall.SIGKILL)
		time.Sleep(50 * time.Millisecond)
		offsets = append(offsets, applied())
	}
	proc := run()
	defer proc.Signal(syscall.SIGKILL) //nolint:errcheck // the last run ends with the test
	time.Sleep(time.Second)
	n := wr.finish()
	t.Logf("10 kills; %d writes; stored offsets after each kill: %s", n, strings.Join(offsets, " "))
	if offsets[len(offsets)-1] == offsets[0] {
		t.Fatalf("the sink made no progress between kills: offsets %v", offsets)
	}
	out, code := w.ferry("verify", "trading.orders", "--plan", file, "--chunk-size", "5000", "--wait", "60s")
	if code != 0 || !strings.Contains(out, "trading.orders: equal") {
		t.Fatalf("verify after 10 kills: exit %d\n%s", code, out)
	}
	t.Log(strings.TrimSpace(out))
}
