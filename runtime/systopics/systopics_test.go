package systopics

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Ensure creates the system topics with their partition counts and
// configs (ferry.checkpoints compacted, its segments rolled every 10
// minutes so that compaction bounds what a job start reads), and leaves
// an existing topic alone.
func TestEnsure(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm, ctx := kadm.NewClient(cl), context.Background()
	for range 2 { // the second time, everything exists
		if err := Ensure(ctx, adm, Checkpoints, DLQ, Slots); err != nil {
			t.Fatal(err)
		}
	}
	details, err := adm.ListTopics(ctx, Checkpoints, DLQ, Slots)
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]int{Checkpoints: CheckpointPartitions, DLQ: 3, Slots: SlotCount} {
		if got := len(details[topic].Partitions); got != want {
			t.Errorf("%s has %d partitions, want %d", topic, got, want)
		}
	}
	configs, err := adm.DescribeTopicConfigs(ctx, Checkpoints)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := configs.On(Checkpoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range rc.Configs {
		got[c.Key] = c.MaybeValue()
	}
	for k, v := range map[string]string{"cleanup.policy": "compact", "segment.ms": "600000"} {
		if got[k] != v {
			t.Errorf("%s %s = %q, want %q", Checkpoints, k, got[k], v)
		}
	}
	if err := Ensure(ctx, adm, "ferry.nope"); err == nil || err.Error() != "systopics: unknown topic ferry.nope" {
		t.Errorf("Ensure(ferry.nope) = %v, want the unknown topic named", err)
	}
}
