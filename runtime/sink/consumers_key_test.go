package sink

import (
	"testing"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/executor"
	"github.com/ferry-pipelines/ferry/schema"
)

// TestConsumerKey: the sinks of two plans that define their datacenter
// alike, TLS and SASL blocks included, share a consumer; another
// definition gets its own.
func TestConsumerKey(t *testing.T) {
	env := func(brokers string) *executor.Env {
		dc := schema.Datacenter{Kafka: schema.Kafka{Brokers: []string{brokers},
			TLS: &schema.TLS{CA: "/etc/ca.pem"}, SASL: &schema.SASL{Mechanism: "PLAIN", User: "ferry"}}}
		return &executor.Env{Plan: &plan.Plan{Datacenters: map[string]schema.Datacenter{"dc1": dc}}}
	}
	spec := plan.Job{Shard: "default", Tier: 1, Sink: &plan.SinkJob{Datacenter: "dc1"}}
	if keyOf(env("k:9092"), spec) != keyOf(env("k:9092"), spec) {
		t.Fatal("two plans defining dc1 alike give their sinks different consumers")
	}
	if keyOf(env("k:9092"), spec) == keyOf(env("other:9092"), spec) {
		t.Fatal("a changed definition of dc1 keeps its sinks' consumer")
	}
}
