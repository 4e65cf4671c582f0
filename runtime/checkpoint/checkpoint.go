// Package checkpoint keeps job progress in Kafka: in the compacted topic
// ferry.checkpoints of the datacenter a job writes to. A job writes its
// checkpoint in the same transaction as the records it stands for, so
// progress and output commit or abort together; on start it reads its last
// committed checkpoint back. Nothing is kept on local disk.
package checkpoint

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// Partition is the ferry.checkpoints partition that holds a job's keys.
func Partition(job string) int32 {
	h := fnv.New32a()
	h.Write([]byte(job))
	return int32(h.Sum32() % systopics.CheckpointPartitions)
}

// Record builds the checkpoint record of one key of a job (a partition
// number for a mirror, "binlog" for a CDC source). Produce it inside the
// transaction whose output it stands for, with a partitioner that honours
// Record.Partition (kgo.ManualPartitioner, or one that defers to it for this
// topic).
func Record(job, key string, value []byte) *kgo.Record {
	return &kgo.Record{
		Topic:     systopics.Checkpoints,
		Partition: Partition(job),
		Key:       []byte(job + "/" + key),
		Value:     value,
	}
}

// Load returns the last committed value of each key of the job. It waits
// for every transaction open on entry to end, so it never returns a
// checkpoint older than one already committed. Call it after the job's
// transactional producers have fenced their predecessors, so that no zombie
// can commit after the read.
func Load(ctx context.Context, opts []kgo.Opt, job string) (map[string][]byte, error) {
	values := map[string][]byte{}
	prefix := job + "/"
	err := kafkaconn.ReadToEnd(ctx, opts, systopics.Checkpoints, []int32{Partition(job)}, func(r *kgo.Record) {
		if !strings.HasPrefix(string(r.Key), prefix) {
			return
		}
		key := strings.TrimPrefix(string(r.Key), prefix)
		if r.Value == nil {
			delete(values, key)
			return
		}
		values[key] = r.Value
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoints of %s: %w", job, err)
	}
	return values, nil
}
