package sink

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/dlq"
	"github.com/ferry-pipelines/ferry/runtime/metrics"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// Events that cannot be applied go to ferry.dlq in the events' datacenter
// with the error headers, as Kafka Connect's errors.tolerance=all with a
// dead letter queue does, and the table goes on. `ferry dlq replay` puts
// such an event back on its topic and partition, where the sink applies it
// again (by its version: never over a newer change of its key).
//
// The letters are written, and acknowledged, before the PostgreSQL
// transaction that moves the offsets past their events commits: a crash in
// between writes a letter twice, never loses one.

// restartError marks an event the job applies once it has started again
// (a column added at the source): never a dead letter.
type restartError struct{ msg string }

func (e restartError) Error() string { return e.msg }

// letter is an event waiting to be dead-lettered.
type letter struct {
	rec   *kgo.Record
	class string
	err   error
}

// refusedRow reports a PostgreSQL refusal of the row itself: a value the
// target's type cannot hold (class 22, data exception) or a constraint it
// breaks (class 23), which no retry changes.
func refusedRow(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && len(pe.Code) == 5 && (pe.Code[:2] == "22" || pe.Code[:2] == "23")
}

// applyAlone applies the batch a row at a time, each under a savepoint, and
// dead-letters the rows PostgreSQL refuses. It returns the rows applied.
func (a *applier) applyAlone(ctx context.Context, tx pgx.Tx) (int, error) {
	won := 0
	for i := range a.batch {
		if _, err := tx.Exec(ctx, "SAVEPOINT ferry_row"); err != nil {
			return 0, err
		}
		n, err := a.t.Apply(ctx, tx, a.batch[i:i+1])
		switch {
		case err == nil:
			won += n
			_, err = tx.Exec(ctx, "RELEASE SAVEPOINT ferry_row")
		case refusedRow(err):
			a.dead = append(a.dead, letter{rec: a.recs[i], class: "apply", err: err})
			_, err = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT ferry_row")
		}
		if err != nil {
			return 0, err
		}
	}
	return won, nil
}

// sendLetters writes the batch's dead letters and waits for them.
func (a *applier) sendLetters(ctx context.Context) error {
	if len(a.dead) == 0 {
		return nil
	}
	if a.dl == nil {
		cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), a.j.kopts...), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
		if err != nil {
			return err
		}
		if err := systopics.Ensure(ctx, kadm.NewClient(cl), systopics.DLQ); err != nil {
			cl.Close()
			return fmt.Errorf("%s: %w", a.j.spec.ID, err)
		}
		a.dl = cl
	}
	recs := make([]*kgo.Record, len(a.dead))
	for i, l := range a.dead {
		recs[i] = dlq.Record(l.rec, dlq.Failure{
			Job: a.j.spec.ID, Topic: l.rec.Topic, Partition: l.rec.Partition, Offset: l.rec.Offset,
			Class: l.class, Message: fmt.Sprintf("cannot apply to %s: %v", a.t.Schema+"."+a.t.Name, l.err),
		})
		a.j.log.Warn("event sent to ferry.dlq", "topic", l.rec.Topic, "partition", l.rec.Partition, "offset", l.rec.Offset, "err", l.err)
	}
	if err := a.dl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("%s: write dead letters: %w", a.j.spec.ID, err)
	}
	a.counts[metrics.DeadLetters] += int64(len(a.dead))
	a.counts[metrics.Failed] += int64(len(a.dead))
	return nil
}
