// Package dlq is ferry's dead letter queue: the topic ferry.dlq in each
// target datacenter. A record that can never be written (too large for the
// target topic, say, or a row that cannot be converted) goes there with
// headers naming where it came from and why it failed, in the same
// transaction as the job's progress, and the job goes on. Replay re-delivers
// dead letters to their final target exactly once and records that it did.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/kafkaconn"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// Header names, as docs/design/design.md fixes them, plus the replay marker's.
const (
	HeaderTopic     = "ferry.error.topic"
	HeaderPartition = "ferry.error.partition"
	HeaderOffset    = "ferry.error.offset"
	HeaderClass     = "ferry.error.class"
	HeaderMessage   = "ferry.error.message"
	HeaderJob       = "ferry.error.job"
	// HeaderReplayOf marks a replay record: "<dlq partition>/<dlq offset>"
	// of the dead letter it re-delivered.
	HeaderReplayOf = "ferry.replay.of"
)

// Failure says where a dead letter came from and why it failed.
type Failure struct {
	Job       string
	Topic     string // the source topic (a mirror) or the target topic (CDC)
	Partition int32
	Offset    int64 // the source offset, or -1 where there is none (CDC)
	Class     string
	Message   string
	// Extra headers, such as a CDC event's binlog position; their keys start
	// with "ferry.error." so that replay strips them.
	Extra []kgo.RecordHeader
}

// Class names an error for ferry.error.class: the Kafka error name where
// there is one (MESSAGE_TOO_LARGE), else "error".
func Class(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return "error"
}

// Permanent reports whether a produce error can never succeed for this
// record, so that retrying would stall the job forever. Everything else is
// retried, never dead-lettered.
func Permanent(err error) bool {
	for _, e := range []*kerr.Error{kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord, kerr.InvalidTimestamp, kerr.CorruptMessage} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// RefusedByClient reports a record that kgo refused before sending it,
// larger than the producer's batch limit before compression; the broker,
// which judges a batch after compression, never saw it. (kgo adds the
// compressed size to the error only when the broker answered.)
func RefusedByClient(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) && !strings.Contains(err.Error(), " compressed_bytes=")
}

// Record builds the dead letter of rec, the record as it would have been
// written to its target (topic and partition there).
func Record(rec *kgo.Record, f Failure) *kgo.Record {
	headers := append([]kgo.RecordHeader(nil), rec.Headers...)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(rec.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(rec.Partition)))},
		kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(f.Offset, 10))},
		kgo.RecordHeader{Key: HeaderClass, Value: []byte(f.Class)},
		kgo.RecordHeader{Key: HeaderMessage, Value: []byte(f.Message)},
		kgo.RecordHeader{Key: HeaderJob, Value: []byte(f.Job)},
	)
	headers = append(headers, f.Extra...)
	return &kgo.Record{
		Topic:     systopics.DLQ,
		Partition: partition(f.Job),
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   headers,
		Timestamp: rec.Timestamp,
	}
}

// partition spreads jobs over ferry.dlq's partitions; a job's dead letters
// stay in one partition, in order.
func partition(job string) int32 {
	var h uint32 = 2166136261
	for i := 0; i < len(job); i++ {
		h = (h ^ uint32(job[i])) * 16777619
	}
	return int32(h % 3)
}

// Entry is a dead letter as `ferry dlq list` shows it.
type Entry struct {
	DLQPartition int32     `json:"dlqPartition"`
	DLQOffset    int64     `json:"dlqOffset"`
	Job          string    `json:"job"`
	Topic        string    `json:"topic"`
	Partition    int32     `json:"partition"`
	Offset       int64     `json:"offset"`
	Class        string    `json:"class"`
	Message      string    `json:"message"`
	Time         time.Time `json:"time"`
	Bytes        int       `json:"bytes"`
	Replayed     bool      `json:"replayed"`
	// Target is the record to re-deliver: the dead letter without ferry's
	// error headers, addressed to its final topic and partition.
	Target *kgo.Record `json:"-"`
}

// List returns the job's dead letters in the order they were written, each
// marked replayed or not.
func List(ctx context.Context, opts []kgo.Opt, job string) ([]Entry, error) {
	var entries []Entry
	replayed := map[string]bool{}
	err := kafkaconn.ReadToEnd(ctx, opts, systopics.DLQ, nil, func(r *kgo.Record) {
		h := headers(r)
		if h[HeaderJob] != job {
			return
		}
		if of, ok := h[HeaderReplayOf]; ok {
			replayed[of] = true
			return
		}
		part, _ := strconv.Atoi(h[HeaderPartition])
		off, _ := strconv.ParseInt(h[HeaderOffset], 10, 64)
		target := &kgo.Record{Topic: h[HeaderTopic], Partition: int32(part), Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
		for _, hd := range r.Headers {
			if !isErrorHeader(hd.Key) {
				target.Headers = append(target.Headers, hd)
			}
		}
		entries = append(entries, Entry{
			DLQPartition: r.Partition, DLQOffset: r.Offset, Job: job,
			Topic: h[HeaderTopic], Partition: int32(part), Offset: off,
			Class: h[HeaderClass], Message: h[HeaderMessage], Time: r.Timestamp,
			Bytes: len(r.Key) + len(r.Value), Target: target,
		})
	})
	if err != nil {
		return nil, err
	}
	for i := range entries {
		entries[i].Replayed = replayed[ref(entries[i].DLQPartition, entries[i].DLQOffset)]
	}
	return entries, nil
}

// ReplayResult counts what Replay did.
type ReplayResult struct {
	Replayed int      // re-delivered now
	Skipped  int      // replayed before
	Failed   []string // still failing, one line each
}

// Replay re-delivers the job's dead letters that were not replayed yet to
// their final topic and partition. Each goes in its own transaction together
// with a marker in ferry.dlq, so a dead letter is delivered once however
// often replay runs or crashes; the transactional ID fences a concurrent
// replay of the same job. A dead letter that fails again stays pending and
// is reported. The first transaction of the replay's producer is read back
// (see kafkaconn.Committed); found aborted, the replay starts over with a
// new producer, once.
func Replay(ctx context.Context, opts []kgo.Opt, job string) (ReplayResult, error) {
	res, err := replay(ctx, opts, job)
	if errors.Is(err, errFirstAborted) {
		return replay(ctx, opts, job) // the first stopped at its first transaction
	}
	return res, err
}

var errFirstAborted = errors.New("the replay's first transaction was aborted although its commit answered")

func replay(ctx context.Context, opts []kgo.Opt, job string) (ReplayResult, error) {
	var res ReplayResult
	entries, err := List(ctx, opts, job)
	if err != nil {
		return res, err
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...),
		kgo.TransactionalID("ferry."+job+".dlq-replay"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(100<<20),
	)...)
	if err != nil {
		return res, err
	}
	defer cl.Close()
	// Fence an earlier replay that may still be running, then read again:
	// what it committed before the fence counts as replayed.
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return res, fmt.Errorf("dlq replay of %s: %w", job, err)
	}
	if entries, err = List(ctx, opts, job); err != nil {
		return res, err
	}
	first := true
	for _, e := range entries {
		if e.Replayed {
			res.Skipped++
			continue
		}
		marker, err := replayOne(ctx, cl, job, e)
		if err == nil && first {
			first = false
			var ok bool
			if ok, err = kafkaconn.Committed(ctx, opts, marker); err == nil && !ok {
				return res, errFirstAborted
			}
		}
		if err != nil {
			if !Permanent(err) {
				return res, fmt.Errorf("dlq replay of %s at %s[%d]@%d: %w", job, systopics.DLQ, e.DLQPartition, e.DLQOffset, err)
			}
			res.Failed = append(res.Failed, fmt.Sprintf("%s[%d]@%d: %v", e.Topic, e.Partition, e.Offset, err))
			continue
		}
		res.Replayed++
	}
	return res, nil
}

// replayOne delivers e with its marker in one transaction and returns the
// marker.
func replayOne(ctx context.Context, cl *kgo.Client, job string, e Entry) (*kgo.Record, error) {
	if err := cl.BeginTransaction(); err != nil {
		return nil, err
	}
	marker := &kgo.Record{
		Topic:     systopics.DLQ,
		Partition: e.DLQPartition,
		Headers: []kgo.RecordHeader{
			{Key: HeaderJob, Value: []byte(job)},
			{Key: HeaderReplayOf, Value: []byte(ref(e.DLQPartition, e.DLQOffset))},
		},
	}
	target := *e.Target
	results := cl.ProduceSync(ctx, &target, marker)
	err := results.FirstErr()
	commit := kgo.TryCommit
	if err != nil {
		commit = kgo.TryAbort
	}
	if endErr := cl.EndTransaction(ctx, commit); err == nil {
		err = endErr
	}
	return marker, err
}

func ref(partition int32, offset int64) string {
	return strconv.Itoa(int(partition)) + "/" + strconv.FormatInt(offset, 10)
}

func headers(r *kgo.Record) map[string]string {
	m := make(map[string]string, len(r.Headers))
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

// isErrorHeader reports ferry's error headers, including jobs' extra ones
// (ferry.error.binlog.file, say); replay strips them.
func isErrorHeader(key string) bool {
	return strings.HasPrefix(key, "ferry.error.")
}
