package mirror

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// defaultMaxMessageBytes is Kafka's default max.message.bytes.
const defaultMaxMessageBytes = 1000012

// provision makes sure the topic exists in datacenter dc with the declared
// partition count, creating it when missing. Another partition count is an
// error naming the datacenter, the topic and both counts: ferry never
// changes a partition count, because that would move keys between
// partitions. It returns the topic's max.message.bytes.
func (m *job) provision(ctx context.Context, dc string, opts []kgo.Opt) (int32, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	spec := m.spec.Mirror
	topics, err := adm.ListTopics(ctx, spec.Topic)
	if err != nil {
		return 0, m.env.Unreachable(ctx, dc, err)
	}
	if t, ok := topics[spec.Topic]; !ok || errors.Is(t.Err, kerr.UnknownTopicOrPartition) {
		rf := int16(-1)
		if spec.ReplicationFactor > 0 {
			rf = int16(spec.ReplicationFactor)
		}
		configs := map[string]*string{}
		for k, v := range spec.Config {
			configs[k] = &v
		}
		resp, err := adm.CreateTopic(ctx, int32(spec.Partitions), rf, configs, spec.Topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return 0, fmt.Errorf("create topic %s in %s: %w", spec.Topic, dc, err)
		}
		if err == nil {
			m.env.Logger.Info("created topic", "topic", spec.Topic, "datacenter", dc, "partitions", spec.Partitions)
		}
		if topics, err = waitTopic(ctx, adm, spec.Topic); err != nil {
			return 0, m.env.Unreachable(ctx, dc, err)
		}
	}
	t := topics[spec.Topic]
	if t.Err != nil {
		return 0, fmt.Errorf("topic %s in %s: %w", spec.Topic, dc, t.Err)
	}
	if n := len(t.Partitions); n != spec.Partitions {
		return 0, fmt.Errorf("topic %s has %d partitions in %s but the definition declares %d: ferry never changes a partition count; change the definition or recreate the topic", spec.Topic, n, dc, spec.Partitions)
	}
	if err := systopics.Ensure(ctx, adm, systopics.DLQ, systopics.Checkpoints); err != nil {
		return 0, fmt.Errorf("datacenter %s: %w", dc, err)
	}
	return maxMessageBytes(ctx, adm, spec.Topic)
}

// waitTopic lists a topic just created until its metadata shows, which may
// take a moment on a cluster of several brokers.
func waitTopic(ctx context.Context, adm *kadm.Client, topic string) (kadm.TopicDetails, error) {
	for i := 0; ; i++ {
		topics, err := adm.ListTopics(ctx, topic)
		if err != nil || i == 50 || (topics.Has(topic) && topics[topic].Err == nil) {
			return topics, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// maxMessageBytes reads a topic's max.message.bytes, the largest record
// batch its brokers accept.
func maxMessageBytes(ctx context.Context, adm *kadm.Client, topic string) (int32, error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return 0, err
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		return 0, err
	}
	for _, c := range rc.Configs {
		if c.Key == "max.message.bytes" && c.Value != nil {
			if v, err := strconv.Atoi(*c.Value); err == nil && v > 0 {
				return int32(v), nil
			}
		}
	}
	return defaultMaxMessageBytes, nil
}
