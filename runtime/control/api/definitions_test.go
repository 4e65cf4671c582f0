package api

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestSplitJoin: the example pipelines split into objects and join back
// into the same definition set, and every spec is already canonical.
func TestSplitJoin(t *testing.T) {
	_, defs, err := compiler.CompileDir("../../../pipelines")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Split(defs)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, Key(o.Kind, o.Name))
		canon, err := DecodeSpec(o.Kind, o.Spec)
		if err != nil {
			t.Fatalf("%s: %v", Key(o.Kind, o.Name), err)
		}
		if string(canon) != string(o.Spec) {
			t.Errorf("%s: spec %s is not canonical (%s)", Key(o.Kind, o.Name), o.Spec, canon)
		}
	}
	want := []string{
		"datacenter/dc1", "datacenter/dc2", "shard/realtime", "shard/standard",
		"mirror/audit.log", "mirror/orders.events", "cdc_source/trading-db",
		"cdc_table/trading-db/trading.fills", "cdc_table/trading-db/trading.orders",
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("objects (-want +got):\n%s", diff)
	}
	joined, err := Join(objs)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(defs)
	b, _ := json.Marshal(joined)
	if string(a) != string(b) {
		t.Fatalf("joined\n%s\nwant\n%s", b, a)
	}
}

// TestSplitJoinSettings: the alerts settings are one object and each
// consumer group (or glob) one of its own, and they join back.
func TestSplitJoinSettings(t *testing.T) {
	defs := &schema.Definitions{
		Datacenters: map[string]schema.Datacenter{}, Shards: map[string]schema.Shard{}, Tiers: map[string]schema.TierSettings{},
		Mirrors: map[string]schema.Mirror{}, CDC: map[string]schema.CDCSource{},
		Alerts: &schema.Alerts{Labels: map[string]string{"team": "platform"}},
		Groups: []string{"orders", "billing-*"},
	}
	objs, err := Split(defs)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, Key(o.Kind, o.Name)+" "+string(o.Spec))
	}
	want := []string{`alerts/alerts {"labels":{"team":"platform"}}`, "group/billing-* {}", "group/orders {}"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("objects (-want +got):\n%s", diff)
	}
	joined, err := Join(objs)
	if err != nil {
		t.Fatal(err)
	}
	defs.Groups = []string{"billing-*", "orders"} // in name order
	if diff := cmp.Diff(defs, joined); diff != "" {
		t.Fatalf("joined (-want +got):\n%s", diff)
	}
}

func TestDecodeSpecRefuses(t *testing.T) {
	for _, tc := range []struct {
		kind Kind
		spec string
		want string
	}{
		{Mirror, ``, "mirror needs a spec"},
		{Mirror, `null`, "mirror needs a spec"},
		{Mirror, `{"partitions": "six"}`, "invalid mirror spec: json: cannot unmarshal string into Go struct field Mirror.partitions of type int"},
		{Shard, `{"tiers": [1], "max": 3}`, `invalid shard spec: json: unknown field "max"`},
		{CDCSource, `{"tables": {"db.t": {"tier": 1}}}`, "a CDC source's spec holds no tables: write each table as its own object (kind cdc_table, name SOURCE/DB.TABLE)"},
		{Kind("topic"), `{}`, `unknown kind "topic" (kinds: datacenter, shard, tier, metrics, alerts, group, mirror, cdc_source, cdc_table)`},
	} {
		_, err := DecodeSpec(tc.kind, json.RawMessage(tc.spec))
		if err == nil || err.Error() != tc.want {
			t.Errorf("DecodeSpec(%s, %s) = %v, want %q", tc.kind, tc.spec, err, tc.want)
		}
	}
}
