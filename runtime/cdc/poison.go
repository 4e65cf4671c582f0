package cdc

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/dlq"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// Change events too large for their topic. Kafka checks a topic's
// max.message.bytes against a batch after compression, the producer a
// record before it; so the producer's batches are bounded by each topic's
// limit (the broker never refuses one for its size) and a record it
// refuses for its own size may still fit once compressed. Such a record
// fails its Kafka transaction, and the job starts again (from its
// checkpoint, before the record) knowing it:
//
//  1. writeAlone: the producer's limit for the record's topic is lifted,
//     and every record of that topic is written alone in a batch, with the
//     tier's codec, until the record is committed; then the producer goes
//     back to its limits.
//  2. deadLetter: the broker refused the record alone in its batch, so it
//     goes to ferry.dlq in its place.
//
// A dead letter that ferry.dlq itself refuses fails the job every time, so
// it is reported and never dropped.
type poisonMode uint8

const (
	writeAlone poisonMode = iota + 1
	deadLetter
)

type poison struct {
	mode  poisonMode
	topic string
	err   error
}

// eventID names a change event across runs of the job: its topic, key
// and row (its value up to the source block, whose times differ from run
// to run).
func eventID(r *kgo.Record) string {
	v := r.Value
	if i := bytes.Index(v, []byte(`,"source":`)); i >= 0 {
		v = v[:i]
	}
	h := fnv.New64a()
	h.Write(v)
	return r.Topic + "\x00" + string(r.Key) + "\x00" + strconv.FormatUint(h.Sum64(), 16)
}

// notePoison learns from a failed record what the next run does with it.
func (j *source) notePoison(rec *kgo.Record, err error) {
	if rec == nil || rec.Topic == systopics.DLQ || !dlq.Permanent(err) {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.poison == nil {
		j.poison = map[string]poison{}
	}
	id := eventID(rec)
	if dlq.RefusedByClient(err) && j.poison[id].mode == 0 {
		j.poison[id] = poison{mode: writeAlone, topic: rec.Topic}
		return
	}
	j.poison[id] = poison{mode: deadLetter, topic: rec.Topic, err: err}
}

// poisoned returns the job's poisoned records and the topics written one
// record at a time, for a new run.
func (j *source) poisoned() (map[string]poison, map[string]bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	all := make(map[string]poison, len(j.poison))
	alone := map[string]bool{}
	for id, p := range j.poison {
		all[id] = p
		if p.mode == writeAlone {
			alone[p.topic] = true
		}
	}
	return all, alone
}

// written forgets records committed in their topic: their poison is over.
func (j *source) written(ids []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, id := range ids {
		delete(j.poison, id)
	}
}

// screen is what send writes for kr: kr itself, or its dead letter.
func (r *runner) screen(kr *kgo.Record) *kgo.Record {
	if len(r.poison) == 0 || kr.Topic == systopics.DLQ {
		return kr
	}
	id := eventID(kr)
	p, ok := r.poison[id]
	switch {
	case !ok:
		return kr
	case p.mode == writeAlone:
		r.aloneIDs = append(r.aloneIDs, id)
		return kr
	}
	for name, tr := range r.tables {
		if tr.p.Topic == kr.Topic {
			r.count(name, metrics.DeadLetters, 1)
			r.count(name, metrics.Failed, 1)
		}
	}
	r.log.Warn("change event sent to ferry.dlq", "topic", kr.Topic, "bytes", len(kr.Value), "err", p.err)
	return dlq.Record(kr, dlq.Failure{
		Job: r.job.ID, Topic: kr.Topic, Partition: -1, Offset: -1,
		Class: dlq.Class(p.err), Message: fmt.Sprintf("cannot write to %s: %v", kr.Topic, p.err),
	})
}

// endAlone runs after a commit that carried records written alone: their
// poison is over, and once no topic needs it the producer is started again
// with its usual limits.
func (r *runner) endAlone(ctx context.Context) error {
	r.src.written(r.aloneIDs)
	r.aloneIDs = r.aloneIDs[:0]
	poison, alone := r.src.poisoned()
	r.poison = poison
	if maps.Equal(alone, r.alone) {
		return nil
	}
	r.cl.Close()
	cl, err := openProducer(ctx, r.opts, r.job, r.limits, alone)
	if err != nil {
		r.cl = nil
		return err
	}
	r.cl, r.alone, r.landed = cl, alone, false
	return nil
}

// deadLetterTopic is the topic a dead letter was meant for.
func deadLetterTopic(rec *kgo.Record) string {
	for _, h := range rec.Headers {
		if h.Key == dlq.HeaderTopic {
			return string(h.Value)
		}
	}
	return "?"
}
