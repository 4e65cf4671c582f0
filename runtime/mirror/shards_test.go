package mirror_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/runtime/headers"
	"github.com/ferry-pipelines/ferry/runtime/statusapi"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestShardsShareWork runs two shards with two `ferry run --shard`
// processes each. While 200,000 records are produced (100,000 per DC, over a
// Tier 1 and a Tier 3 topic), one process of each shard is killed with
// SIGKILL and later restarted: the survivors take its partitions, and each
// DC ends with every record of the other exactly once.
func TestShardsShareWork(t *testing.T) {
	if testing.Short() {
		t.Skip("runs executors as processes")
	}
	w := newWorld(t, map[string]schema.Mirror{
		"fast.events": {Partitions: 4, Tier: 1},
		"slow.events": {Partitions: 4, Tier: 3},
	}, func(d *schema.Definitions) {
		d.Shards = map[string]schema.Shard{
			"realtime": {Tiers: []int{1}},
			"standard": {Tiers: []int{2, 3, 4}},
		}
	})
	for _, j := range w.plan.Jobs {
		want := map[int]string{1: "realtime", 3: "standard"}[j.Tier]
		if j.Shard != want {
			t.Fatalf("%s placed on %s, want %s", j.ID, j.Shard, want)
		}
	}
	var procs []*executorProcess
	var addrs []string
	for _, shard := range []string{"realtime", "standard"} {
		for i := 1; i <= 2; i++ {
			addr := freeAddr(t)
			p := w.process("--shard", shard, "--instance", fmt.Sprintf("%s-%d", shard, i), "--http", addr)
			p.start()
			procs = append(procs, p)
			addrs = append(addrs, addr)
		}
	}
	for _, topic := range []string{"fast.events", "slow.events"} {
		w.waitTopic("dc1", topic)
		w.waitTopic("dc2", topic)
	}
	const perTopicDC = 50000
	var wg sync.WaitGroup
	for _, dc := range []string{"dc1", "dc2"} {
		for _, topic := range []string{"fast.events", "slow.events"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.produceSlowly(dc, topic, perTopicDC, 10*time.Second)
			}()
		}
	}
	time.Sleep(3 * time.Second)
	procs[0].kill() // one process of realtime
	procs[3].kill() // one process of standard
	// Within the session timeout the survivors copy every partition.
	for _, i := range []int{1, 2} {
		waitPartitions(t, addrs[i], 4)
	}
	procs[0].start()
	procs[3].start()
	wg.Wait()

	for _, topic := range []string{"fast.events", "slow.events"} {
		for _, dc := range []string{"dc1", "dc2"} {
			recs := w.consume(dc, topic, 2*perTopicDC, 2*time.Minute)
			seen := map[string]int{}
			for _, r := range recs {
				if _, n := header(r, headers.Origin); n == 1 {
					off, _ := header(r, headers.OriginOffset)
					seen[fmt.Sprintf("%d/%s", r.Partition, off)]++
				}
			}
			dups := 0
			for _, n := range seen {
				if n > 1 {
					dups++
				}
			}
			if len(recs) != 2*perTopicDC || len(seen) != perTopicDC || dups != 0 {
				t.Fatalf("%s in %s: %d records, %d distinct mirrored, %d duplicated; want %d, %d, 0",
					topic, dc, len(recs), len(seen), dups, 2*perTopicDC, perTopicDC)
			}
		}
	}
}

// waitPartitions waits until every mirror job of the executor at addr
// copies n partitions.
func waitPartitions(t *testing.T, addr string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/v1/jobs")
		if err == nil {
			var jobs statusapi.Jobs
			err = json.NewDecoder(resp.Body).Decode(&jobs)
			resp.Body.Close()
			all := err == nil && len(jobs.Jobs) > 0
			last = ""
			for _, j := range jobs.Jobs {
				last += fmt.Sprintf("%s:%v ", j.ID, j.Partitions)
				if len(j.Partitions) != n {
					all = false
				}
			}
			if all {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("executor %s did not take over all %d partitions: %s", addr, n, last)
}

// freeAddr returns a loopback address with a free port.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
