package plan_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/schema"
)

// basePlan is a small plan: one mirror (two jobs) and one CDC source.
func basePlan() *plan.Plan {
	client := plan.ClientSettings{Linger: 0, BatchMaxBytes: 262144, FetchMaxWait: plan.Duration(10 * time.Millisecond), FetchMinBytes: 1, Compression: "none", CommitInterval: plan.Duration(10 * time.Millisecond)}
	mirror := func(from, to string) plan.Job {
		return plan.Job{
			ID: plan.MirrorJobID("orders.events", from, to), Kind: plan.KindMirror, Shard: "realtime", Tier: 1,
			Budget: plan.Duration(300 * time.Millisecond), Weight: 6, Client: client,
			Mirror: &plan.MirrorJob{Topic: "orders.events", Partitions: 6, From: from, To: to},
		}
	}
	return &plan.Plan{
		Version:     plan.Version,
		Datacenters: map[string]schema.Datacenter{"dc1": {Kafka: schema.Kafka{Brokers: []string{"k1:9092"}}}, "dc2": {Kafka: schema.Kafka{Brokers: []string{"k2:9092"}}}},
		Shards:      map[string]schema.Shard{"realtime": {Tiers: []int{1}}, "standard": {Tiers: []int{2, 3, 4}}},
		Tiers:       map[string]plan.Duration{"1": plan.Duration(300 * time.Millisecond), "2": plan.Duration(10 * time.Second), "3": plan.Duration(10 * time.Minute), "4": plan.Duration(time.Hour)},
		Metrics:     plan.Metrics{Interval: plan.Duration(10 * time.Second)},
		Jobs: []plan.Job{
			{
				ID: plan.CDCJobID("trading-db"), Kind: plan.KindCDC, Shard: "realtime", Tier: 1,
				Budget: plan.Duration(300 * time.Millisecond), Weight: 1, Client: client,
				CDC: &plan.CDCJob{
					Source: "trading-db", Datacenter: "dc1", TopicPrefix: "trading",
					MySQL:  schema.MySQL{Address: "db:3306", User: "ferry", Password: schema.Secret{Env: "P"}, ServerID: 5401},
					Tables: []plan.CDCTable{{Name: "trading.orders", Database: "trading", Table: "orders", Topic: "trading.trading.orders", Tier: 1, Budget: plan.Duration(300 * time.Millisecond), Snapshot: "initial"}},
				},
			},
			mirror("dc1", "dc2"),
			mirror("dc2", "dc1"),
		},
	}
}

// TestCompare runs each kind of change through Compare and checks both
// renderings byte for byte: Text for reviewers, JSON for tools.
func TestCompare(t *testing.T) {
	tests := []struct {
		name     string
		change   func(p *plan.Plan)
		wantText string
		wantJSON string
	}{
		{
			name:     "no change",
			change:   func(*plan.Plan) {},
			wantText: "No changes.\n",
			wantJSON: `{"added":[],"removed":[],"changed":[],"moved":[],"settings":[],"outputs":[]}`,
		},
		{
			name: "mirror added",
			change: func(p *plan.Plan) {
				for _, j := range basePlan().Jobs[1:] {
					j.ID = strings.Replace(j.ID, "orders.events", "payments.events", 1)
					j.Shard, j.Tier = "standard", 2
					p.Jobs = append(p.Jobs, j)
				}
			},
			wantText: `+ mirror:payments.events:dc1-dc2 (mirror, tier 2, shard standard)
+ mirror:payments.events:dc2-dc1 (mirror, tier 2, shard standard)

2 to add, 0 to remove, 0 to change, 0 to move, 0 settings changed.
`,
			wantJSON: `{"added":[{"id":"mirror:payments.events:dc1-dc2","kind":"mirror","shard":"standard","tier":2},{"id":"mirror:payments.events:dc2-dc1","kind":"mirror","shard":"standard","tier":2}],"removed":[],"changed":[],"moved":[],"settings":[],"outputs":[]}`,
		},
		{
			name:   "job removed",
			change: func(p *plan.Plan) { p.Jobs = p.Jobs[1:] },
			wantText: `- cdc:trading-db (cdc, tier 1, shard realtime)

0 to add, 1 to remove, 0 to change, 0 to move, 0 settings changed.
`,
			wantJSON: `{"added":[],"removed":[{"id":"cdc:trading-db","kind":"cdc","shard":"realtime","tier":1}],"changed":[],"moved":[],"settings":[],"outputs":[]}`,
		},
		{
			name: "fields changed, a CDC table added",
			change: func(p *plan.Plan) {
				p.Jobs[1].Mirror.Partitions, p.Jobs[1].Weight = 12, 12
				p.Jobs[0].CDC.Tables = append(p.Jobs[0].CDC.Tables, plan.CDCTable{Name: "trading.fills", Database: "trading", Table: "fills", Topic: "trading.trading.fills", Tier: 2, Budget: plan.Duration(10 * time.Second), Snapshot: "no_data"})
				p.Jobs[0].CDC.Tables[0].Snapshot = "never"
			},
			wantText: `~ cdc:trading-db
    cdc.tables[trading.fills]: (none) -> {"budget":"10s","database":"trading","name":"trading.fills","snapshot":"no_data","table":"fills","tier":2,"topic":"trading.trading.fills"}
    cdc.tables[trading.orders].snapshot: "initial" -> "never"
~ mirror:orders.events:dc1-dc2
    mirror.partitions: 6 -> 12
    weight: 6 -> 12

0 to add, 0 to remove, 2 to change, 0 to move, 0 settings changed.
`,
			wantJSON: `{"added":[],"removed":[],"changed":[{"id":"cdc:trading-db","changes":[{"field":"cdc.tables[trading.fills]","old":null,"new":{"budget":"10s","database":"trading","name":"trading.fills","snapshot":"no_data","table":"fills","tier":2,"topic":"trading.trading.fills"}},{"field":"cdc.tables[trading.orders].snapshot","old":"initial","new":"never"}]},{"id":"mirror:orders.events:dc1-dc2","changes":[{"field":"mirror.partitions","old":6,"new":12},{"field":"weight","old":6,"new":12}]}],"moved":[],"settings":[],"outputs":[]}`,
		},
		{
			name:   "moved",
			change: func(p *plan.Plan) { p.Jobs[2].Shard = "standard" },
			wantText: `> mirror:orders.events:dc2-dc1 moved: shard realtime -> standard

0 to add, 0 to remove, 0 to change, 1 to move, 0 settings changed.
`,
			wantJSON: `{"added":[],"removed":[],"changed":[],"moved":[{"id":"mirror:orders.events:dc2-dc1","from":"realtime","to":"standard"}],"settings":[],"outputs":[]}`,
		},
		{
			name: "settings changed",
			change: func(p *plan.Plan) {
				p.Tiers["1"] = plan.Duration(200 * time.Millisecond)
				p.Metrics.Interval = plan.Duration(time.Minute)
				p.Shards["archive"] = schema.Shard{Tiers: []int{4}, MaxJobs: 10}
			},
			wantText: `~ settings
    metrics.interval: "10s" -> "1m"
    shards.archive: (none) -> {"maxJobs":10,"tiers":[4]}
    tiers.1: "300ms" -> "200ms"

0 to add, 0 to remove, 0 to change, 0 to move, 3 settings changed.
`,
			wantJSON: `{"added":[],"removed":[],"changed":[],"moved":[],"settings":[{"field":"metrics.interval","old":"10s","new":"1m"},{"field":"shards.archive","old":null,"new":{"maxJobs":10,"tiers":[4]}},{"field":"tiers.1","old":"300ms","new":"200ms"}],"outputs":[]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := basePlan()
			tt.change(next)
			d := plan.Compare(basePlan(), next)
			if got := d.Text(); got != tt.wantText {
				t.Errorf("Text:\n%s\nwant:\n%s", got, tt.wantText)
			}
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.wantJSON {
				t.Errorf("JSON:\n%s\nwant:\n%s", b, tt.wantJSON)
			}
			if d.Empty() != (tt.name == "no change") {
				t.Errorf("Empty() = %v", d.Empty())
			}
		})
	}
}

// TestCompareWithNoOldPlan treats a missing old plan as an empty one:
// every job is added and the settings are new.
func TestCompareWithNoOldPlan(t *testing.T) {
	d := plan.Compare(nil, basePlan())
	var ids []string
	for _, j := range d.Added {
		ids = append(ids, j.ID)
	}
	if got, want := strings.Join(ids, " "), "cdc:trading-db mirror:orders.events:dc1-dc2 mirror:orders.events:dc2-dc1"; got != want {
		t.Errorf("added %s, want %s", got, want)
	}
	if len(d.Removed)+len(d.Changed)+len(d.Moved) != 0 {
		t.Errorf("diff against nothing removes, changes or moves: %+v", d)
	}
}
