package mirror_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/runtime/headers"
	"github.com/ferry-pipelines/ferry/schema"
)

// executorProcess is `ferry run --plan` as a child process.
type executorProcess struct {
	t    testing.TB
	plan string
	args []string
	cmd  *exec.Cmd
}

// process prepares `ferry run --plan` on the world's plan with extra
// arguments (--instance NAME is required: restarts take their work back at
// once through static group membership).
func (w *world) process(args ...string) *executorProcess {
	w.t.Helper()
	if _, err := devenv.FerryBinary(); err != nil {
		w.t.Fatal(err)
	}
	b, err := w.plan.Encode()
	if err != nil {
		w.t.Fatal(err)
	}
	file := filepath.Join(w.t.TempDir(), "plan.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		w.t.Fatal(err)
	}
	p := &executorProcess{t: w.t, plan: file, args: args}
	w.t.Cleanup(func() { p.kill() })
	return p
}

func (p *executorProcess) start() {
	p.t.Helper()
	cmd, err := devenv.FerryCommand(append([]string{"run", "--plan", p.plan, "--log-level", "warn"}, p.args...)...)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = cmd
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
}

// kill stops the process with SIGKILL: no clean shutdown, no last commit.
func (p *executorProcess) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	p.cmd = nil
}

// TestMirrorExactlyOnceAcrossKills kills the executor with SIGKILL at ten
// random moments while 100,000 records are produced (half in each DC),
// restarting it each time, and then counts, read_committed, that each DC
// holds every record of the other exactly once.
func TestMirrorExactlyOnceAcrossKills(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the executor as a process")
	}
	w := newWorld(t, map[string]schema.Mirror{"trades": {Partitions: 4, Tier: 1}})
	proc := w.process("--instance", "crash-test")
	proc.start()
	w.waitTopic("dc1", "trades")
	w.waitTopic("dc2", "trades")

	const perDC = 50000
	var wg sync.WaitGroup
	for _, dc := range []string{"dc1", "dc2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.produceSlowly(dc, "trades", perDC, 12*time.Second)
		}()
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 10; i++ {
		time.Sleep(time.Duration(300+rng.Intn(1200)) * time.Millisecond)
		proc.kill()
		time.Sleep(time.Duration(rng.Intn(300)) * time.Millisecond)
		proc.start()
	}
	wg.Wait()

	for _, dc := range []string{"dc1", "dc2"} {
		other := map[string]string{"dc1": "dc2", "dc2": "dc1"}[dc]
		recs := w.consume(dc, "trades", 2*perDC, 90*time.Second)
		seen := map[string]int{}
		mirrored := 0
		for _, r := range recs {
			origin, n := header(r, headers.Origin)
			if n == 0 {
				continue
			}
			if origin != other {
				t.Fatalf("%s: record with ferry.origin %q", dc, origin)
			}
			off, _ := header(r, headers.OriginOffset)
			seen[fmt.Sprintf("%d/%s", r.Partition, off)]++
			mirrored++
		}
		dups := 0
		for k, n := range seen {
			if n > 1 {
				dups++
				t.Errorf("%s: origin record %s (partition/offset) arrived %d times", dc, k, n)
			}
		}
		if len(seen) != perDC || mirrored != perDC || dups > 0 {
			t.Fatalf("%s: %d mirrored records, %d distinct origin offsets, %d duplicated; want %d once each", dc, mirrored, len(seen), dups, perDC)
		}
	}
}

// produceSlowly writes n records to topic in dc over about d.
func (w *world) produceSlowly(dc, topic string, n int, d time.Duration) {
	cl := w.client(dc, kgo.DefaultProduceTopic(topic))
	const chunk = 500
	pause := d / time.Duration(n/chunk)
	for i := 0; i < n; i += chunk {
		var recs []*kgo.Record
		for j := i; j < i+chunk && j < n; j++ {
			recs = append(recs, &kgo.Record{Key: []byte(dc + "-" + strconv.Itoa(j)), Value: []byte("v")})
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			w.t.Error(err)
			return
		}
		time.Sleep(pause)
	}
}
