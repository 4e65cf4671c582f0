package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/control/api"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestVerbs creates, reads, lists, updates and deletes one object of every
// kind through its paths.
func TestVerbs(t *testing.T) {
	e := newWorld(t).start()
	c := e.client(t, api.OwnerTerraform)
	twoDCs(t, c)
	source := schema.CDCSource{
		MySQL:       schema.MySQL{Address: "127.0.0.1:13306", User: "ferry", Password: schema.Secret{Env: "P"}, ServerID: 5401},
		Datacenter:  "dc1",
		TopicPrefix: "trading",
	}
	if _, err := c.Put(ctxT(t), api.CDCSource, "trading-db", source, version(0)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind          api.Kind
		name          string
		spec, updated any
		path          string
	}{
		{api.Datacenter, "dc3", dc("127.0.0.1:39092"), dc("127.0.0.1:39093"), "/v1/datacenters/dc3"},
		{api.Shard, "realtime", schema.Shard{Tiers: []int{1}}, schema.Shard{Tiers: []int{1}, MaxJobs: 10}, "/v1/shards/realtime"},
		{api.Tier, "1", schema.TierSettings{Budget: "200ms"}, schema.TierSettings{Budget: "250ms"}, "/v1/tiers/1"},
		{api.Metrics, "metrics", schema.Metrics{Interval: "5s"}, schema.Metrics{Interval: "1s"}, "/v1/settings/metrics"},
		{api.Alerts, "alerts", schema.Alerts{Labels: map[string]string{"team": "a"}}, schema.Alerts{Labels: map[string]string{"team": "b"}}, "/v1/settings/alerts"},
		{api.Group, "billing-*", struct{}{}, nil, "/v1/groups/billing-%2A"}, // a group's spec is {}: no update
		{api.Mirror, "orders.events", schema.Mirror{Partitions: 6, Tier: 1}, schema.Mirror{Partitions: 8, Tier: 1}, "/v1/mirrors/orders.events"},
		{api.CDCSource, "risk-db", withServerID(source, 5402), withServerID(source, 5403), "/v1/cdc/risk-db"},
		{api.CDCTable, "trading-db/trading.orders", schema.CDCTable{Tier: 1}, schema.CDCTable{Tier: 1, Snapshot: "no_data"}, "/v1/cdc/trading-db/tables/trading.orders"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			if p := api.Path(tc.kind, tc.name); p != tc.path {
				t.Fatalf("path %s, want %s", p, tc.path)
			}
			created, err := c.Put(ctxT(t), tc.kind, tc.name, tc.spec, version(0))
			if err != nil {
				t.Fatal(err)
			}
			if created.Version != 1 || created.Owner != api.OwnerTerraform || created.Updated.IsZero() {
				t.Fatalf("created %+v, want version 1 owned by terraform:default", created)
			}
			got, err := c.Get(ctxT(t), tc.kind, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			wantSpec(t, got, tc.spec)
			var listed []api.Object
			if tc.kind == api.CDCTable {
				listed, err = c.Tables(ctxT(t), "trading-db")
			} else {
				listed, err = c.List(ctxT(t), tc.kind)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !hasObject(listed, tc.name) {
				t.Fatalf("list of %s lacks %s: %+v", tc.kind, tc.name, listed)
			}
			at := int64(1)
			if tc.updated != nil {
				updated, err := c.Put(ctxT(t), tc.kind, tc.name, tc.updated, version(1))
				if err != nil {
					t.Fatal(err)
				}
				if updated.Version != 2 {
					t.Fatalf("updated to version %d, want 2", updated.Version)
				}
				wantSpec(t, updated, tc.updated)
				at = 2
			}
			if err := c.Delete(ctxT(t), tc.kind, tc.name, version(at)); err != nil {
				t.Fatal(err)
			}
			_, err = c.Get(ctxT(t), tc.kind, tc.name)
			wantStatus(t, err, http.StatusNotFound, api.Describe(tc.kind, tc.name)+" does not exist")
		})
	}
}

func withServerID(s schema.CDCSource, id uint32) schema.CDCSource {
	s.MySQL.ServerID = id
	return s
}

// wantSpec checks the object holds spec in its canonical form.
func wantSpec(t *testing.T, o *api.Object, spec any) {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	want, err := api.DecodeSpec(o.Kind, b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(o.Spec, want) {
		t.Fatalf("spec %s, want %s", o.Spec, want)
	}
}

func hasObject(objs []api.Object, name string) bool {
	for _, o := range objs {
		if o.Name == name {
			return true
		}
	}
	return false
}

// TestRefusals checks each kind of refusal and its exact message: what
// the compiler says about the resulting set (400), stale versions (409),
// objects of another owner (403), and requests the API cannot read.
func TestRefusals(t *testing.T) {
	e := newWorld(t).start()
	tf := e.client(t, api.OwnerTerraform)
	cue := e.client(t, api.CUEOwner("pipelines"))
	twoDCs(t, tf)
	if _, err := tf.Put(ctxT(t), api.Shard, "realtime", schema.Shard{Tiers: []int{1}}, version(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := tf.Put(ctxT(t), api.Mirror, "orders.events", schema.Mirror{Partitions: 6, Tier: 1}, version(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := cue.Put(ctxT(t), api.Mirror, "audit.log", schema.Mirror{Partitions: 3, Tier: 1}, version(0)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		do     func() error
		status int
		msg    string
	}{
		{"schema", func() error {
			_, err := tf.Put(ctxT(t), api.Mirror, "bad.topic", schema.Mirror{Partitions: 1, Tier: 7}, nil)
			return err
		}, 400, "the definitions would not compile:\nmirrors.\"bad.topic\".tier: invalid tier 7 (tiers are 1 to 4)"},
		{"placement", func() error {
			_, err := tf.Put(ctxT(t), api.Mirror, "metrics.raw", schema.Mirror{Partitions: 1, Tier: 4, Shard: "realtime"}, nil)
			return err
		}, 400, "the definitions would not compile:\n" +
			"mirrors.\"metrics.raw\".shard: shard \"realtime\" does not accept tier 4 (it accepts tiers 1)"},
		{"reference left dangling", func() error {
			return tf.Delete(ctxT(t), api.Datacenter, "dc2", nil)
		}, 400, "the definitions would not compile:\n" +
			"mirrors.\"audit.log\": a mirror needs two datacenters, but only dc1 is declared: declare another one; the same for 1 more: mirrors.\"orders.events\""},
		{"shard that many mirrors name", func() error {
			for i := range 6 {
				if _, err := tf.Put(ctxT(t), api.Mirror, fmt.Sprintf("pinned%d", i), schema.Mirror{Partitions: 1, Tier: 1, Shard: "realtime"}, version(0)); err != nil {
					t.Fatal(err)
				}
			}
			return tf.Delete(ctxT(t), api.Shard, "realtime", nil)
		}, 400, "the definitions would not compile:\n" +
			"mirrors.pinned0.shard: unknown shard \"realtime\" (declared: none); the same for 5 more: mirrors.pinned1.shard, mirrors.pinned2.shard, mirrors.pinned3.shard and 2 others"},
		{"unknown field", func() error {
			_, err := tf.Put(ctxT(t), api.Mirror, "x", map[string]any{"partitions": 1, "tier": 1, "replicas": 3}, nil)
			return err
		}, 400, `mirror "x": invalid mirror spec: json: unknown field "replicas"`},
		{"table without source", func() error {
			_, err := tf.Put(ctxT(t), api.CDCTable, "nowhere/db.t", schema.CDCTable{Tier: 1}, nil)
			return err
		}, 400, `CDC table "nowhere/db.t": there is no CDC source "nowhere"; create the source first, or delete its tables before the source`},
		{"create existing", func() error {
			_, err := tf.Put(ctxT(t), api.Mirror, "orders.events", schema.Mirror{Partitions: 6, Tier: 1}, version(0))
			return err
		}, 409, `mirror "orders.events" already exists (version 1, owned by terraform:default); read it and update that version, or import it`},
		{"stale update", func() error {
			if _, err := tf.Put(ctxT(t), api.Mirror, "orders.events", schema.Mirror{Partitions: 7, Tier: 1}, version(1)); err != nil {
				t.Fatal(err)
			}
			_, err := tf.Put(ctxT(t), api.Mirror, "orders.events", schema.Mirror{Partitions: 8, Tier: 1}, version(1))
			return err
		}, 409, `mirror "orders.events" changed: it is at version 2, you read version 1; read it again and retry`},
		{"stale delete", func() error {
			return tf.Delete(ctxT(t), api.Mirror, "orders.events", version(1))
		}, 409, `mirror "orders.events" changed: it is at version 2, you read version 1; read it again and retry`},
		{"cue writes terraform's", func() error {
			_, err := cue.Put(ctxT(t), api.Mirror, "orders.events", schema.Mirror{Partitions: 6, Tier: 1}, nil)
			return err
		}, 403, `mirror "orders.events" is owned by terraform:default; change it there or delete it there first, or have an admin transfer it (POST /v1/transfer)`},
		{"terraform deletes cue's", func() error {
			return tf.Delete(ctxT(t), api.Mirror, "audit.log", nil)
		}, 403, `mirror "audit.log" is owned by cue:pipelines; change it there or delete it there first, or have an admin transfer it (POST /v1/transfer)`},
		{"delete missing", func() error {
			return tf.Delete(ctxT(t), api.Mirror, "gone", nil)
		}, 404, `mirror "gone" does not exist`},
		{"serverID a running source holds", func() error {
			src := schema.CDCSource{MySQL: schema.MySQL{Address: "db:3306", User: "ferry", Password: schema.Secret{Env: "P"}, ServerID: 7}, Datacenter: "dc1", TopicPrefix: "zeta"}
			if _, err := tf.Put(ctxT(t), api.CDCSource, "zeta-db", src, version(0)); err != nil {
				t.Fatal(err)
			}
			if _, err := tf.Put(ctxT(t), api.CDCTable, "zeta-db/shop.orders", schema.CDCTable{Tier: 1}, version(0)); err != nil {
				t.Fatal(err)
			}
			src.TopicPrefix = "alpha"
			_, err := tf.Put(ctxT(t), api.CDCSource, "alpha-db", src, version(0))
			return err
		}, 400, "the definitions would not compile:\n" +
			`cdc."alpha-db".mysql.serverID: serverID 7 is also used by cdc."zeta-db".mysql.serverID; each CDC source needs its own`},
		{"metrics name", func() error {
			_, err := tf.Batch(ctxT(t), api.Batch{Ops: []api.Op{{Op: api.OpPut, Kind: api.Metrics, Name: "other", Spec: []byte(`{}`)}}})
			return err
		}, 400, `the metrics settings are named "metrics", not "other"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantStatus(t, tc.do(), tc.status, tc.msg)
		})
	}
	o, err := tf.Get(ctxT(t), api.Mirror, "orders.events")
	if err != nil {
		t.Fatal(err)
	}
	if m := specOf[schema.Mirror](t, o); m.Partitions != 7 || o.Version != 2 {
		t.Fatalf("after refusals orders.events is %+v at version %d, want 7 partitions at version 2", m, o.Version)
	}
}

// TestBatch applies several changes at once, all or none, and checks a
// dry run writes nothing.
func TestBatch(t *testing.T) {
	e := newWorld(t).start()
	c := e.client(t, api.OwnerTerraform)
	twoDCs(t, c)
	put := func(name string, tier int) api.Op {
		b, _ := json.Marshal(schema.Mirror{Partitions: 1, Tier: tier})
		return api.Op{Op: api.OpPut, Kind: api.Mirror, Name: name, Spec: b}
	}
	res, err := c.Batch(ctxT(t), api.Batch{Ops: []api.Op{put("a", 1), put("b", 2)}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 2 || res.Results[0].Action != api.Created {
		t.Fatalf("dry run results %+v", res.Results)
	}
	if objs, _ := c.List(ctxT(t), api.Mirror); len(objs) != 0 {
		t.Fatalf("a dry run wrote %+v", objs)
	}
	_, err = c.Batch(ctxT(t), api.Batch{Ops: []api.Op{put("a", 1), put("b", 9)}})
	wantStatus(t, err, 400, "the definitions would not compile:\nmirrors.b.tier: invalid tier 9 (tiers are 1 to 4)")
	if objs, _ := c.List(ctxT(t), api.Mirror); len(objs) != 0 {
		t.Fatalf("a refused batch wrote %+v", objs)
	}
	res, err = c.Batch(ctxT(t), api.Batch{Ops: []api.Op{put("a", 1), put("b", 2)}})
	if err != nil {
		t.Fatal(err)
	}
	res, err = c.Batch(ctxT(t), api.Batch{Ops: []api.Op{put("a", 1), put("b", 3), {Op: api.OpDelete, Kind: api.Datacenter, Name: "dc2"}, put("c", 1)}})
	if err == nil {
		t.Fatalf("batch leaving mirrors with one datacenter was accepted: %+v", res)
	}
	res, err = c.Batch(ctxT(t), api.Batch{Ops: []api.Op{put("a", 1), put("b", 3), {Op: api.OpDelete, Kind: api.Mirror, Name: "a"}}})
	wantStatus(t, err, 400, `mirror "a" appears twice in one batch; change it once`)
	res, err = c.Batch(ctxT(t), api.Batch{Ops: []api.Op{put("a", 1), put("b", 3)}})
	if err != nil {
		t.Fatal(err)
	}
	want := []api.Result{{Kind: api.Mirror, Name: "a", Action: api.Unchanged, Version: 1}, {Kind: api.Mirror, Name: "b", Action: api.Updated, Version: 2}}
	if len(res.Results) != 2 || res.Results[0] != want[0] || res.Results[1] != want[1] {
		t.Fatalf("results %+v, want %+v", res.Results, want)
	}
}

// TestWaitingObjects: a CDC source waits for its tables (stored, checked,
// left out of the plan) and shards may outlive the last datacenter, so
// Terraform can create and destroy objects one at a time in any order
// its references allow.
func TestWaitingObjects(t *testing.T) {
	e := newWorld(t).start()
	c := e.client(t, api.OwnerTerraform)
	if _, err := c.Put(ctxT(t), api.Shard, "realtime", schema.Shard{Tiers: []int{1}}, nil); err != nil {
		t.Fatal(err)
	}
	twoDCs(t, c)
	source := schema.CDCSource{
		MySQL:       schema.MySQL{Address: "127.0.0.1:13306", User: "ferry", Password: schema.Secret{Env: "P"}, ServerID: 5401},
		Datacenter:  "dc9",
		TopicPrefix: "trading",
	}
	_, err := c.Put(ctxT(t), api.CDCSource, "trading-db", source, nil)
	wantStatus(t, err, 400, "the definitions would not compile:\ncdc.\"trading-db\".datacenter: unknown datacenter \"dc9\" (declared: dc1, dc2)")
	source.Datacenter = "dc1"
	if _, err := c.Put(ctxT(t), api.CDCSource, "trading-db", source, nil); err != nil {
		t.Fatal(err)
	}
	if jobs := jobIDs(t, c); len(jobs) != 0 {
		t.Fatalf("a source without tables is in the plan: %v", jobs)
	}
	if _, err := c.Put(ctxT(t), api.CDCTable, "trading-db/trading.orders", schema.CDCTable{Tier: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if jobs := jobIDs(t, c); strings.Join(jobs, " ") != "cdc:trading-db" {
		t.Fatalf("jobs %v, want cdc:trading-db", jobs)
	}
	err = c.Delete(ctxT(t), api.CDCSource, "trading-db", nil)
	wantStatus(t, err, 400, `CDC table "trading-db/trading.orders": there is no CDC source "trading-db"; create the source first, or delete its tables before the source`)
	for _, o := range []struct {
		kind api.Kind
		name string
	}{{api.CDCTable, "trading-db/trading.orders"}, {api.CDCSource, "trading-db"}, {api.Datacenter, "dc1"}, {api.Datacenter, "dc2"}} {
		if err := c.Delete(ctxT(t), o.kind, o.name, nil); err != nil {
			t.Fatal(err)
		}
	}
	if objs, _ := c.Objects(ctxT(t)); len(objs) != 1 || objs[0].Kind != api.Shard {
		t.Fatalf("objects %+v, want the shard only", objs)
	}
}

func jobIDs(t *testing.T, c *api.Client) []string {
	t.Helper()
	p, err := c.Plan(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range p.Jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

// TestPlanAndDefinitions reads the stored set back as definitions and as
// the plan the compiler makes of them.
func TestPlanAndDefinitions(t *testing.T) {
	e := newWorld(t).start()
	c := e.client(t, api.OwnerTerraform)
	twoDCs(t, c)
	if _, err := c.Put(ctxT(t), api.Mirror, "orders.events", schema.Mirror{Partitions: 6, Tier: 1}, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{plan.MirrorJobID("orders.events", "dc1", "dc2"), plan.MirrorJobID("orders.events", "dc2", "dc1")}
	if got := jobIDs(t, c); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("jobs %v, want %v", got, want)
	}
	resp, err := http.Get(e.url + "/v1/definitions")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var defs schema.Definitions
	if err := json.NewDecoder(resp.Body).Decode(&defs); err != nil {
		t.Fatal(err)
	}
	if len(defs.Datacenters) != 2 || defs.Mirrors["orders.events"].Partitions != 6 {
		t.Fatalf("definitions %+v", defs)
	}
}
