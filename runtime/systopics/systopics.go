// Package systopics names ferry's own topics and creates them in a
// datacenter: the dead letter queue, the metrics topic, job checkpoints and
// stored definitions. Pipelines may not declare topics under "ferry.".
package systopics

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Names of ferry's topics, as docs/design/design.md fixes them.
const (
	DLQ         = "ferry.dlq"
	Metrics     = "ferry.metrics"
	Checkpoints = "ferry.checkpoints"
	Definitions = "ferry.definitions"
	// Leases stays empty: the processes of a shard that may run a job that
	// must run once (a CDC source) join a group on it, and the member given
	// its one partition holds the job.
	Leases = "ferry.leases"
	// Slots stays empty too: the processes of a shard that mirror from one
	// datacenter to another at one tier join a group on it, and each
	// member copies the mirror partitions of the slots (its partitions)
	// the group gives it.
	Slots = "ferry.slots"
)

// SlotCount is the partition count of ferry.slots: how many slots the
// partitions of one lane (shard, direction, tier) are spread over, and so
// how many processes of a shard can share that lane's work and how many
// transactional producers a lane has at most.
const SlotCount = 8

// CheckpointPartitions is the partition count of ferry.checkpoints. A job's
// checkpoints all live in one partition, chosen by hashing the job ID, so a
// job loads its progress by reading one small compacted partition.
const CheckpointPartitions = 50

// checkpointSegmentMs rolls ferry.checkpoints' segments every 10 minutes.
// Kafka compacts only closed segments, and by default a segment closes at
// 1 GiB or after 7 days: a Tier 1 fleet writes a checkpoint with nearly
// every transaction, and every claim of a partition reads its job's
// checkpoint partition from the start, so without it a week of
// uncompacted checkpoints would be read at each job start.
const checkpointSegmentMs = "600000"

// DLQMaxMessageBytes is ferry.dlq's max.message.bytes: dead letters include
// records too large for their own topic.
const DLQMaxMessageBytes = 16 << 20

type spec struct {
	partitions int32
	configs    map[string]*string
}

func str(s string) *string { return &s }

var specs = map[string]spec{
	DLQ:         {partitions: 3, configs: map[string]*string{"max.message.bytes": str(strconv.Itoa(DLQMaxMessageBytes))}},
	Metrics:     {partitions: 3},
	Checkpoints: {partitions: CheckpointPartitions, configs: map[string]*string{"cleanup.policy": str("compact"), "segment.ms": str(checkpointSegmentMs)}},
	Definitions: {partitions: 1, configs: map[string]*string{"cleanup.policy": str("compact")}},
	Leases:      {partitions: 1},
	Slots:       {partitions: SlotCount},
}

// Ensure creates the named system topics that do not exist yet.
func Ensure(ctx context.Context, adm *kadm.Client, names ...string) error {
	for _, name := range names {
		sp, ok := specs[name]
		if !ok {
			return fmt.Errorf("systopics: unknown topic %s", name)
		}
		resp, err := adm.CreateTopic(ctx, sp.partitions, -1, sp.configs, name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create %s: %w", name, err)
		}
	}
	return nil
}
