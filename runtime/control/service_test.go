package control

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/control/api"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestTwoExecutors: a write through one executor is read through the other
// at once and reaches the other's runner as a plan.
func TestTwoExecutors(t *testing.T) {
	w := newWorld(t)
	a, b := w.start(), w.start()
	first := nextPlan(t, b.svc)
	if len(first.Jobs) != 0 {
		t.Fatalf("first plan of an empty store has jobs: %+v", first.Jobs)
	}
	ca, cb := a.client(t, api.OwnerTerraform), b.client(t, api.OwnerTerraform)
	twoDCs(t, ca)
	if _, err := ca.Put(ctxT(t), api.Mirror, "orders.events", schema.Mirror{Partitions: 6, Tier: 1}, version(0)); err != nil {
		t.Fatal(err)
	}
	o, err := cb.Get(ctxT(t), api.Mirror, "orders.events")
	if err != nil {
		t.Fatalf("write through a, read through b: %v", err)
	}
	if o.Version != 1 || specOf[schema.Mirror](t, o).Partitions != 6 {
		t.Fatalf("b reads %+v", o)
	}
	p := waitPlan(t, b.svc, func(p *plan.Plan) bool { return p.Job(plan.MirrorJobID("orders.events", "dc1", "dc2")) != nil })
	if len(p.Jobs) != 2 {
		t.Fatalf("b's plan has jobs %+v, want both directions of orders.events", p.Jobs)
	}
	if _, err := cb.Put(ctxT(t), api.Mirror, "orders.events", schema.Mirror{Partitions: 6, Tier: 2}, version(1)); err != nil {
		t.Fatal(err)
	}
	waitPlan(t, a.svc, func(p *plan.Plan) bool {
		j := p.Job(plan.MirrorJobID("orders.events", "dc1", "dc2"))
		return j != nil && j.Tier == 2
	})
}

func nextPlan(t *testing.T, s *Service) *plan.Plan {
	t.Helper()
	select {
	case p := <-s.Plans():
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no plan delivered within 10s")
		return nil
	}
}

// waitPlan reads delivered plans until one satisfies ok.
func waitPlan(t *testing.T, s *Service, ok func(*plan.Plan) bool) *plan.Plan {
	t.Helper()
	for {
		if p := nextPlan(t, s); ok(p) {
			return p
		}
	}
}

// TestConcurrentWriters: writers on two executors increment one mirror's
// partition count by read-modify-write with versions. Each accepted write
// must have been checked against the latest state, so the count ends at
// exactly one more than the number of accepted writes: no update is lost,
// whichever executor took it.
func TestConcurrentWriters(t *testing.T) {
	w := newWorld(t)
	execs := []*executor{w.start(), w.start()}
	twoDCs(t, execs[0].client(t, api.OwnerTerraform))
	if _, err := execs[0].client(t, api.OwnerTerraform).Put(ctxT(t), api.Mirror, "counter", schema.Mirror{Partitions: 1, Tier: 1}, version(0)); err != nil {
		t.Fatal(err)
	}
	const writers, rounds = 6, 8
	var mu sync.Mutex
	accepted, conflicts := 0, 0
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := 0; i < writers; i++ {
		c := execs[i%2].client(t, api.OwnerTerraform)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				o, err := c.Get(ctxT(t), api.Mirror, "counter")
				if err != nil {
					errs <- err
					return
				}
				var m schema.Mirror
				json.Unmarshal(o.Spec, &m)
				m.Partitions++
				_, err = c.Put(ctxT(t), api.Mirror, "counter", m, &o.Version)
				mu.Lock()
				switch api.StatusOf(err) {
				case 0:
					accepted++
				case http.StatusConflict:
					conflicts++
				default:
					errs <- err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, e := range execs {
		o, err := e.client(t, api.OwnerTerraform).Get(ctxT(t), api.Mirror, "counter")
		if err != nil {
			t.Fatal(err)
		}
		if p := specOf[schema.Mirror](t, o).Partitions; p != 1+accepted || o.Version != int64(1+accepted) {
			t.Fatalf("%d writes accepted, %d refused as stale: partitions %d at version %d, want %d at version %d",
				accepted, conflicts, p, o.Version, 1+accepted, 1+accepted)
		}
	}
	t.Logf("%d writes accepted, %d refused as stale", accepted, conflicts)
}

// TestFencing interleaves two executors' writes at the worst moment:
// executor a reads the state and prepares its change, b commits a change
// to the same object, then a commits. a's commit must fail (b's taking the
// writer ID fenced a), and a's retry must see b's change: 409.
func TestFencing(t *testing.T) {
	w := newWorld(t)
	a, b := w.start(), w.start()
	twoDCs(t, a.client(t, api.OwnerTerraform))
	ctx := ctxT(t)
	objs, err := a.svc.catchUp(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(schema.Mirror{Partitions: 1, Tier: 1})
	create := []api.Op{{Op: api.OpPut, Kind: api.Mirror, Name: "race", Spec: spec, Version: version(0)}}
	c, aerr := prepare(objs, api.OwnerTerraform, create, time.Now().UTC())
	if aerr != nil {
		t.Fatal(aerr)
	}
	if _, aerr := b.svc.apply(ctx, api.OwnerTerraform, api.Batch{Ops: create}); aerr != nil {
		t.Fatal(aerr)
	}
	rec, _ := encode(c.writes[0])
	if _, err := a.svc.w.commit(ctx, []*kgo.Record{rec}); err == nil {
		t.Fatal("a committed a change checked against a state b had changed since")
	}
	_, aerr = a.svc.apply(ctx, api.OwnerTerraform, api.Batch{Ops: create})
	if aerr == nil || aerr.Status != http.StatusConflict {
		t.Fatalf("a's retry: %v, want 409", aerr)
	}
	o, err := a.client(t, api.OwnerTerraform).Get(ctx, api.Mirror, "race")
	if err != nil || o.Version != 1 {
		t.Fatalf("race is %+v, %v; want version 1", o, err)
	}
}

// TestCompaction: after updates, deletions and a fenced write, compacting
// ferry.definitions leaves the same state for an executor that starts
// afterwards.
func TestCompaction(t *testing.T) {
	w := newWorld(t)
	a, b := w.start(), w.start()
	ca := a.client(t, api.OwnerTerraform)
	twoDCs(t, ca)
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("t%d", i)
		if _, err := ca.Put(ctxT(t), api.Mirror, name, schema.Mirror{Partitions: 1, Tier: 1}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ca.Put(ctxT(t), api.Mirror, name, schema.Mirror{Partitions: 2, Tier: 1}, nil); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := ca.Delete(ctxT(t), api.Mirror, name, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A fenced, aborted write of t1 must not survive compaction.
	objs, _ := a.svc.catchUp(ctxT(t), true)
	spec, _ := json.Marshal(schema.Mirror{Partitions: 9, Tier: 1})
	c, _ := prepare(objs, api.OwnerTerraform, []api.Op{{Op: api.OpPut, Kind: api.Mirror, Name: "t1", Spec: spec}}, time.Now().UTC())
	if _, aerr := b.svc.apply(ctxT(t), api.OwnerTerraform, api.Batch{Ops: []api.Op{{Op: api.OpPut, Kind: api.Mirror, Name: "t3", Spec: spec}}}); aerr != nil {
		t.Fatal(aerr)
	}
	rec, _ := encode(c.writes[0])
	if _, err := a.svc.w.commit(ctxT(t), []*kgo.Record{rec}); err == nil {
		t.Fatal("fenced write committed")
	}
	before, err := ca.Objects(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	w.home.Cluster.Compact()
	after, err := w.start().client(t, api.OwnerTerraform).Objects(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	got, want := summary(after), summary(before)
	if got != want {
		t.Fatalf("after compaction a new executor reads\n%s\nwant\n%s", got, want)
	}
	if want != "datacenter dc1 v1 datacenter dc2 v1 mirror t1 v2 {\"partitions\":2,\"tier\":1} mirror t3 v3 {\"partitions\":9,\"tier\":1} " {
		t.Fatalf("state %s", want)
	}
}

func summary(objs []api.Object) string {
	s := ""
	for _, o := range objs {
		s += fmt.Sprintf("%s %s v%d ", o.Kind, o.Name, o.Version)
		if o.Kind == api.Mirror {
			s += string(o.Spec) + " "
		}
	}
	return s
}

// TestFirstCommitLost ends the definitions writer's first transaction with
// an abort while kgo is answered as if it committed, which kgo v1.22 itself
// was seen to do to a new producer's first transaction. The write is not
// acknowledged until it is stored: the writer reads its first commit back,
// finds it missing and writes it again.
func TestFirstCommitLost(t *testing.T) {
	w := newWorld(t)
	var flipped atomic.Int32
	w.home.Cluster.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if end := req.(*kmsg.EndTxnRequest); end.Commit && end.TransactionalID == writerID && flipped.Add(1) == 1 {
			end.Commit = false // the broker aborts; kgo reads a success
		}
		return nil, nil, false
	})
	a := w.start()
	twoDCs(t, a.client(t, api.OwnerTerraform))
	if flipped.Load() == 0 {
		t.Fatal("no commit was turned into an abort: the test did not test")
	}
	b := w.start()
	for _, name := range []string{"dc1", "dc2"} {
		o, err := b.client(t, api.OwnerTerraform).Get(ctxT(t), api.Datacenter, name)
		if err != nil {
			t.Fatalf("%s, acknowledged, read through another executor: %v", name, err)
		}
		if o.Version != 1 {
			t.Fatalf("%s at version %d, want 1", name, o.Version)
		}
	}
}
