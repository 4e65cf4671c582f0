// Package chaos_test is ferry's soak under faults: both-way mirror traffic
// and CDC writes while a driver kills executor processes with SIGKILL,
// injects Kafka errors and latency through kfake's control hooks, restarts
// MariaDB and pauses a datacenter for longer than the tier budget. At the
// end it proves that every record and every row version arrived exactly
// once, and prints the counts.
//
// `make test` runs it for 1 minute; `make chaos` for 5 (FERRY_CHAOS_DURATION
// sets any other length).
package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/internal/devenv"
	"github.com/ferry-pipelines/ferry/internal/devenv/devtest"
	"github.com/ferry-pipelines/ferry/runtime/headers"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/schema"
)

const passEnv = "FERRY_CHAOS_DB_PASSWORD"

// topics are the mirrored topics of the soak, with their tiers.
var topics = map[string]schema.Mirror{
	"chaos.orders": {Partitions: 4, Tier: 1},
	"chaos.audit":  {Partitions: 3, Tier: 2},
}

const cdcTable = "chaosdb.rows"

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("a soak")
	}
	duration := time.Minute
	if v := os.Getenv("FERRY_CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("FERRY_CHAOS_DURATION=%q: %v", v, err)
		}
		duration = d
	}
	s := newSoak(t)
	s.start()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	t.Logf("soak for %v", duration)
	traffic, stopTraffic := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, dc := range []string{"dc1", "dc2"} {
		for topic := range topics {
			wg.Add(1)
			go func() { defer wg.Done(); s.produce(traffic, dc, topic) }()
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.writeRows(traffic) }()

	end := time.Now().Add(duration)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(1500+rng.Intn(2500)) * time.Millisecond)
		s.fault(rng)
	}
	stopTraffic()
	wg.Wait()
	s.heal()
	s.verify()
}

// soak is the world under test.
type soak struct {
	t        *testing.T
	pair     *devenv.Pair
	db       *devenv.MariaDB
	plan     *plan.Plan
	planFile string
	bin      string
	procs    []*proc

	mu       sync.Mutex
	produced map[string]map[string]bool // dc/topic -> keys acknowledged
	writes   int
	actions  map[string]int
}

type proc struct {
	name string
	addr string
	cmd  *exec.Cmd
}

func newSoak(t *testing.T) *soak {
	t.Helper()
	if _, _, err := devenv.MariaDBBinaries(); err != nil {
		t.Skip(err)
	}
	pair := devtest.Pair(t)
	db := devtest.MariaDB(t, devenv.MariaDBOptions{})
	if err := db.Exec("CREATE DATABASE chaosdb", "CREATE TABLE "+cdcTable+" (id INT AUTO_INCREMENT PRIMARY KEY, ver INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	defs := &schema.Definitions{
		Datacenters: map[string]schema.Datacenter{
			"dc1": {Kafka: schema.Kafka{Brokers: []string{pair.DC1.Addr()}}},
			"dc2": {Kafka: schema.Kafka{Brokers: []string{pair.DC2.Addr()}}},
		},
		Mirrors: topics,
		CDC: map[string]schema.CDCSource{"chaos-db": {
			MySQL: schema.MySQL{
				Address: db.Addr(), User: devenv.FerryUser, Password: schema.Secret{Env: passEnv}, ServerID: 7001,
				Heartbeat: &schema.Heartbeat{Interval: "50ms"},
			},
			Datacenter: "dc1", TopicPrefix: "chaos",
			Tables: map[string]schema.CDCTable{cdcTable: {Tier: 1, Snapshot: schema.SnapshotInitial}},
		}},
	}
	p, err := compiler.CompileDefinitions(defs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.json")
	if err := os.WriteFile(planFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	bin, err := devenv.FerryBinary()
	if err != nil {
		t.Fatal(err)
	}
	s := &soak{t: t, pair: pair, db: db, plan: p, planFile: planFile, bin: bin,
		produced: map[string]map[string]bool{}, actions: map[string]int{}}
	for i := 1; i <= 2; i++ {
		s.procs = append(s.procs, &proc{name: fmt.Sprintf("chaos-%d", i), addr: freeAddr(t)})
	}
	t.Cleanup(func() {
		for _, p := range s.procs {
			s.kill(p)
		}
	})
	return s
}

func (s *soak) start() {
	for _, p := range s.procs {
		s.run(p)
	}
	for topic := range topics {
		s.waitTopic("dc1", topic)
		s.waitTopic("dc2", topic)
	}
	// Rows are written once capture has begun (and the empty table's
	// initial load is done), so that every row version is in the binlog
	// ferry reads rather than folded into a snapshot read.
	for deadline := time.Now().Add(time.Minute); !s.capturing(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			s.t.Fatal("the CDC source is not capturing after 1m")
		}
	}
}

// capturing reports whether a process runs the CDC source with its initial
// load done.
func (s *soak) capturing() bool {
	for _, p := range s.procs {
		resp, err := http.Get("http://" + p.addr + "/v1/jobs/cdc:chaos-db")
		if err != nil {
			continue
		}
		var st metrics.Status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err == nil && st.State == metrics.StateRunning {
			return true
		}
	}
	return false
}

func (s *soak) run(p *proc) {
	cmd := exec.Command(s.bin, "run", "--plan", s.planFile, "--instance", p.name, "--http", p.addr, "--log-level", "error")
	cmd.Env = append(os.Environ(), passEnv+"="+devenv.FerryPassword)
	if os.Getenv("FERRY_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	p.cmd = cmd
}

func (s *soak) kill(p *proc) {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
	p.cmd = nil
}

func (s *soak) count(action string) {
	s.mu.Lock()
	s.actions[action]++
	s.mu.Unlock()
}

// fault does one random harmful thing.
func (s *soak) fault(rng *rand.Rand) {
	cluster := s.pair.DC1.Cluster
	dc := "dc1"
	if rng.Intn(2) == 1 {
		cluster, dc = s.pair.DC2.Cluster, "dc2"
	}
	switch rng.Intn(6) {
	case 0, 1: // kill -9 an executor, restart it soon after
		p := s.procs[rng.Intn(len(s.procs))]
		s.kill(p)
		s.count("kill -9 executor")
		time.Sleep(time.Duration(rng.Intn(3000)) * time.Millisecond)
		s.run(p)
	case 2: // retriable errors on produce, fetch and transaction ends
		cluster.Fault(
			kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotLeaderForPartition, Count: 1 + rng.Intn(5)},
			kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Err: kerr.NotLeaderForPartition, Count: 1 + rng.Intn(5)},
			kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.ConcurrentTransactions, Count: 1 + rng.Intn(3)},
		)
		s.count("Kafka errors in " + dc)
	case 3: // latency: 50-150 ms on the next 20 produce requests
		n := 20
		delay := time.Duration(50+rng.Intn(100)) * time.Millisecond
		// A control that does not answer stays installed until it drops
		// itself.
		cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			if n--; n <= 0 {
				cluster.DropControl()
			}
			time.Sleep(delay)
			return nil, nil, false
		})
		s.count("Kafka latency in " + dc)
	case 4: // pause a datacenter for longer than the Tier 1 budget
		pause := time.Duration(800+rng.Intn(1200)) * time.Millisecond
		cluster.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
			cluster.DropControl()
			time.Sleep(pause) // control functions run on the cluster's loop: everything waits
			return nil, nil, false
		})
		s.count("pause " + dc + " > budget")
	case 5: // restart MariaDB, abruptly or cleanly
		if rng.Intn(2) == 0 {
			_ = s.db.Kill()
		} else {
			_ = s.db.Stop()
		}
		if err := s.db.Restart(); err != nil {
			s.t.Errorf("restart MariaDB: %v", err)
		}
		s.count("restart MariaDB")
	}
}

// heal makes sure both executors run again after the faults.
func (s *soak) heal() {
	for _, p := range s.procs {
		if p.cmd == nil {
			s.run(p)
		}
	}
}

// produce writes client records to topic in dc until ctx ends, remembering
// the keys the cluster acknowledged.
func (s *soak) produce(ctx context.Context, dc, topic string) {
	cl := s.client(dc, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(2*time.Millisecond))
	key := dc + "/" + topic
	for i := 0; ctx.Err() == nil; i++ {
		var batch []*kgo.Record
		for j := 0; j < 20; j++ {
			batch = append(batch, &kgo.Record{Key: []byte(fmt.Sprintf("%s-%d", dc, i*20+j)), Value: []byte("v")})
		}
		pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res := cl.ProduceSync(pctx, batch...)
		cancel()
		s.mu.Lock()
		if s.produced[key] == nil {
			s.produced[key] = map[string]bool{}
		}
		for _, r := range res {
			if r.Err == nil {
				s.produced[key][string(r.Record.Key)] = true
			}
		}
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
}

// writeRows inserts and updates versioned rows until ctx ends, riding out
// MariaDB restarts.
func (s *soak) writeRows(ctx context.Context) {
	ids := 0
	for i := 0; ctx.Err() == nil; i++ {
		var q string
		if ids == 0 || i%3 == 0 {
			q = "INSERT INTO " + cdcTable + " (ver) VALUES (1)"
		} else {
			q = fmt.Sprintf("UPDATE %s SET ver = ver + 1 WHERE id = %d", cdcTable, (i*31)%ids+1)
		}
		if err := s.db.Exec(q); err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if rows, err := s.db.Query("SELECT COUNT(*) FROM " + cdcTable); err == nil {
			ids, _ = strconv.Atoi(rows[0][0])
		}
		s.mu.Lock()
		s.writes++
		s.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *soak) client(dc string, opts ...kgo.Opt) *kgo.Client {
	addr := s.pair.DC1.Addr()
	if dc == "dc2" {
		addr = s.pair.DC2.Addr()
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(cl.Close)
	return cl
}

func (s *soak) waitTopic(dc, topic string) {
	cl := s.client(dc)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(context.Background(), cl)
		if err == nil && len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0 {
			return
		}
	}
	s.t.Fatalf("topic %s never appeared in %s", topic, dc)
}

// readAll reads every committed record of topic in dc, waiting until done
// says the read is complete or the catch-up time is over.
func (s *soak) readAll(dc, topic string, done func([]*kgo.Record) bool) []*kgo.Record {
	cl := s.client(dc, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out []*kgo.Record
	for !done(out) && ctx.Err() == nil {
		poll, pcancel := context.WithTimeout(ctx, 2*time.Second)
		cl.PollFetches(poll).EachRecord(func(r *kgo.Record) { out = append(out, r) })
		pcancel()
	}
	// A last read, where a duplicate would show.
	poll, pcancel := context.WithTimeout(context.Background(), time.Second)
	defer pcancel()
	cl.PollFetches(poll).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	return out
}

// tally is one line of the final counts.
type tally struct {
	what                                              string
	produced, delivered, lost, duplicated, deadLetter int
}

// verify proves exactly once and prints the counts.
func (s *soak) verify() {
	var rows []tally
	dead := s.deadLetters()
	names := make([]string, 0, len(topics))
	for topic := range topics {
		names = append(names, topic)
	}
	sort.Strings(names)
	for _, topic := range names {
		for _, pair := range [][2]string{{"dc1", "dc2"}, {"dc2", "dc1"}} {
			from, to := pair[0], pair[1]
			want := s.produced[from+"/"+topic]
			recs := s.readAll(to, topic, func(rs []*kgo.Record) bool { return mirroredFrom(rs, from) >= len(want) })
			seen := map[string]int{}
			for _, r := range recs {
				origin := ""
				for _, h := range r.Headers {
					if h.Key == headers.Origin {
						origin = string(h.Value)
					}
				}
				if origin == from {
					seen[string(r.Key)]++
				}
			}
			rw := tally{what: fmt.Sprintf("mirror %s %s->%s", topic, from, to), produced: len(want), deadLetter: dead["mirror:"+topic+":"+from+"-"+to]}
			for k, n := range seen {
				rw.delivered++
				if n > 1 {
					rw.duplicated += n - 1
				}
				if !want[k] {
					s.t.Errorf("%s: %s arrived but was never acknowledged to its producer", rw.what, k)
				}
			}
			for k := range want {
				if seen[k] == 0 {
					rw.lost++
				}
			}
			rows = append(rows, rw)
		}
	}
	rows = append(rows, s.verifyCDC(dead["cdc:chaos-db"]))
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-38s %9s %9s %5s %10s %13s\n", "", "produced", "delivered", "lost", "duplicated", "dead-lettered")
	bad := false
	for _, r := range rows {
		fmt.Fprintf(&b, "%-38s %9d %9d %5d %10d %13d\n", r.what, r.produced, r.delivered, r.lost, r.duplicated, r.deadLetter)
		bad = bad || r.lost > 0 || r.duplicated > 0
	}
	var acts []string
	for a, n := range s.actions {
		acts = append(acts, fmt.Sprintf("%s x%d", a, n))
	}
	sort.Strings(acts)
	fmt.Fprintf(&b, "faults: %s\n", strings.Join(acts, ", "))
	t := s.t
	t.Log(b.String())
	if bad {
		t.Fatal("records lost or duplicated")
	}
}

func mirroredFrom(rs []*kgo.Record, from string) int {
	n := 0
	for _, r := range rs {
		for _, h := range r.Headers {
			if h.Key == headers.Origin && string(h.Value) == from {
				n++
			}
		}
	}
	return n
}

// verifyCDC checks that the CDC topic holds each row version of the table
// once and in order: versions 1..final of every row.
func (s *soak) verifyCDC(dead int) (r tally) {
	r.what, r.deadLetter = "cdc "+cdcTable+" row versions", dead
	final := map[string]int{}
	var rows [][]string
	var err error
	for i := 0; i < 50; i++ { // MariaDB may still be coming back
		if rows, err = s.db.Query("SELECT id, ver FROM " + cdcTable); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	for _, row := range rows {
		v, _ := strconv.Atoi(row[1])
		final[row[0]] = v
		r.produced += v
	}
	type env struct {
		Op    string         `json:"op"`
		After map[string]any `json:"after"`
	}
	// versions lists each row's versions in topic order; changes only
	// holds those of change events. An initial load's read ("r") is the
	// row's state, which the load may emit again after a change event of
	// the same version (DBLog is at-least-once for state): it proves a
	// version arrived but never counts as a duplicate.
	var changes map[string][]int
	versions := func(recs []*kgo.Record) map[string][]int {
		seen := map[string][]int{}
		changes = map[string][]int{}
		for _, x := range recs {
			if x.Value == nil {
				continue
			}
			var e env
			if json.Unmarshal(x.Value, &e) != nil || e.After == nil {
				continue
			}
			id := fmt.Sprint(e.After["id"])
			v := int(e.After["ver"].(float64))
			seen[id] = append(seen[id], v)
			if e.Op != "r" {
				changes[id] = append(changes[id], v)
			}
		}
		return seen
	}
	recs := s.readAll("dc1", "chaos."+cdcTable, func(rs []*kgo.Record) bool {
		seen := versions(rs)
		for id, v := range final {
			if vs := seen[id]; len(vs) == 0 || vs[len(vs)-1] < v {
				return false
			}
		}
		return true
	})
	for id, vs := range versions(recs) {
		want := final[id]
		arrived, got := map[int]bool{}, map[int]int{}
		for _, v := range vs {
			arrived[v] = true
		}
		for _, v := range changes[id] {
			got[v]++
		}
		for v := 1; v <= want; v++ {
			switch n := got[v]; {
			case !arrived[v]:
				r.lost++
			case n > 1:
				r.duplicated += n - 1
				r.delivered++
				s.t.Logf("row %s version %d arrived %d times: %s", id, v, n, describeVersion(recs, id, v))
			default:
				r.delivered++
			}
		}
		for i := 1; i < len(vs); i++ {
			if vs[i] < vs[i-1] {
				s.t.Errorf("row %s: versions out of order: %v", id, vs)
				break
			}
		}
	}
	seen := versions(recs)
	for id, v := range final {
		if _, ok := seen[id]; !ok {
			r.lost += v
		}
	}
	return r
}

// deadLetters counts the dead letters of each job in both datacenters.
func (s *soak) deadLetters() map[string]int {
	out := map[string]int{}
	for _, dc := range []string{"dc1", "dc2"} {
		cl := s.client(dc, kgo.ConsumeTopics("ferry.dlq"), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "ferry.error.job" {
					out[string(h.Value)]++
				}
			}
		})
		cancel()
	}
	return out
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// describeVersion lists the records of a row version, to see where a
// duplicate came from.
func describeVersion(recs []*kgo.Record, id string, ver int) string {
	var out []string
	for _, x := range recs {
		var e struct {
			Op     string         `json:"op"`
			After  map[string]any `json:"after"`
			Source map[string]any `json:"source"`
		}
		if x.Value == nil || json.Unmarshal(x.Value, &e) != nil || e.After == nil {
			continue
		}
		if fmt.Sprint(e.After["id"]) == id && int(e.After["ver"].(float64)) == ver {
			out = append(out, fmt.Sprintf("[offset %d op %s file %v pos %v row %v snapshot %v ts %v]", x.Offset, e.Op, e.Source["file"], e.Source["pos"], e.Source["row"], e.Source["snapshot"], e.Source["ts_ms"]))
		}
	}
	return strings.Join(out, " ")
}
