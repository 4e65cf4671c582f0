package compiler_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/schema"
)

// placementDefs declares 5,000 mirrors (10,000 jobs) of mixed tiers and
// partition counts over 50 shards, plus extra more mirrors.
func placementDefs(extra int) *schema.Definitions {
	d := &schema.Definitions{
		Datacenters: map[string]schema.Datacenter{
			"dc1": {Kafka: schema.Kafka{Brokers: []string{"127.0.0.1:19092"}}},
			"dc2": {Kafka: schema.Kafka{Brokers: []string{"127.0.0.1:29092"}}},
		},
		Shards:  map[string]schema.Shard{},
		Mirrors: map[string]schema.Mirror{},
	}
	for i := 0; i < 50; i++ {
		tiers := []int{2, 3, 4}
		if i < 10 {
			tiers = []int{1}
		}
		d.Shards[fmt.Sprintf("s%02d", i)] = schema.Shard{Tiers: tiers, MaxJobs: 400}
	}
	for i := 0; i < 5000+extra; i++ {
		d.Mirrors[fmt.Sprintf("topic.%05d", i)] = schema.Mirror{Partitions: 1 + i%12, Tier: 1 + i%4}
	}
	return d
}

// BenchmarkPlacement places 10,000 jobs on 50 shards, then adds 100 jobs
// with the first plan as the previous one, and reports the time and how
// many existing jobs moved (goal: 0 unless a shard is over capacity).
func BenchmarkPlacement(b *testing.B) {
	start := time.Now()
	first, err := compiler.CompileDefinitions(placementDefs(0))
	if err != nil {
		b.Fatal(err)
	}
	firstTime := time.Since(start)
	start = time.Now()
	second, err := compiler.CompileDefinitions(placementDefs(50), compiler.WithPrevious(first))
	if err != nil {
		b.Fatal(err)
	}
	secondTime := time.Since(start)
	d := plan.Compare(first, second)
	b.ReportMetric(float64(len(first.Jobs)), "jobs")
	b.ReportMetric(firstTime.Seconds(), "compile-s")
	b.ReportMetric(float64(len(d.Added)), "added")
	b.ReportMetric(float64(len(d.Moved)), "moved")
	b.Logf("%d jobs on 50 shards compiled and placed in %v; adding %d jobs took %v and moved %d existing jobs (goal 0)",
		len(first.Jobs), firstTime.Round(time.Millisecond), len(d.Added), secondTime.Round(time.Millisecond), len(d.Moved))
	if len(d.Moved) != 0 {
		b.Errorf("%d jobs moved", len(d.Moved))
	}
}
