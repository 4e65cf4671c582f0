package provider

import (
	"context"
	"net/http"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

// TestAttributeOf: a compiler problem about the resource's own object is
// placed on the attribute it names; one about another object, or a field
// the resource does not have, is not.
func TestAttributeOf(t *testing.T) {
	for _, c := range []struct {
		r       resource.Resource
		kind    api.Kind
		name    string
		problem string
		want    path.Path // empty: none
	}{
		{newMirrorResource(), api.Mirror, "audit.log", `mirrors."audit.log".shard: shard "realtime" does not accept tier 4 (it accepts tiers 1)`, path.Root("shard")},
		{newMirrorResource(), api.Mirror, "audit.log", `mirrors."orders.events".shard: unknown shard "x"`, path.Empty()},
		{newCDCSourceResource(), api.CDCSource, "trading-db", `cdc."trading-db".mysql.serverID: serverID 5401 is also cdc.other's`, path.Root("mysql").AtName("server_id")},
		{newCDCSourceResource(), api.CDCSource, "trading-db", `cdc."trading-db".tables."t.a".tier: bad`, path.Empty()},
		{newCDCTableResource(), api.CDCTable, "trading-db/trading.orders", `cdc."trading-db".tables."trading.orders".tier: tier 5`, path.Root("tier")},
		{newDatacenterResource(), api.Datacenter, "dc1", `datacenters.dc1.kafka.brokers: empty`, path.Root("brokers")},
		{newShardResource(), api.Shard, "fast", `shards.fast.maxJobs: too few`, path.Root("max_jobs")},
	} {
		var resp resource.SchemaResponse
		c.r.Schema(context.Background(), resource.SchemaRequest{}, &resp)
		err := &api.Error{Status: http.StatusBadRequest, Message: "the definitions would not compile", Problems: []string{c.problem}}
		got, ok := attributeOf(resp.Schema.Attributes, c.kind, c.name, err)
		if ok != !c.want.Equal(path.Empty()) || ok && !got.Equal(c.want) {
			t.Errorf("%s: got %v (%v), want %v", c.problem, got, ok, c.want)
		}
	}
}

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{"serverID": "server_id", "topicPrefix": "topic_prefix", "maxJobs": "max_jobs", "tier": "tier", "replicationFactor": "replication_factor"} {
		if got := snake(in); got != want {
			t.Errorf("snake(%q) = %q, want %q", in, got, want)
		}
	}
}
