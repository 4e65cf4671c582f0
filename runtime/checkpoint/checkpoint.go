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
	"time"

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

// Entry is one committed checkpoint record: its offset in ferry.checkpoints
// and its value (nil for a tombstone).
type Entry struct {
	Offset int64
	Value  []byte
	Time   time.Time
}

// History returns the committed records of the keys keep accepts (whole
// keys, "<job>/<key>"), each key's in log order, from the partitions that
// hold the jobs' checkpoints. Like Load it waits for the transactions open
// on entry to end. Log order is the order in which writers committed
// against each other, which is what lets a writer check that nobody wrote a
// key between a record it read and the one it wrote (see the mirror's
// claims).
func History(ctx context.Context, rs *kafkaconn.Readers, jobs []string, keep func(key string) bool) (map[string][]Entry, error) {
	seen := map[int32]bool{}
	var parts []int32
	for _, j := range jobs {
		if p := Partition(j); !seen[p] {
			seen[p] = true
			parts = append(parts, p)
		}
	}
	out := map[string][]Entry{}
	if len(parts) == 0 {
		return out, nil
	}
	err := rs.ReadToEnd(ctx, systopics.Checkpoints, parts, func(r *kgo.Record) {
		if key := string(r.Key); keep(key) {
			out[key] = append(out[key], Entry{Offset: r.Offset, Value: r.Value, Time: r.Timestamp})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	return out, nil
}
