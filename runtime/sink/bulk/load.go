package bulk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
	"github.com/ferry-pipelines/ferry/runtime/cdcstate"
	"github.com/ferry-pipelines/ferry/runtime/checkpoint"
	"github.com/ferry-pipelines/ferry/runtime/sink"
)

// Defaults of Load and Verify.
const (
	DefaultChunkSize   = 8192
	DefaultParallelism = 4
)

// Options tune Load and Verify.
type Options struct {
	// ChunkSize is the rows per primary key chunk. Default DefaultChunkSize.
	ChunkSize int
	// Parallelism is how many chunks are read (and written) at once, each
	// worker on its own snapshot connection. Default DefaultParallelism.
	Parallelism int
	// Progress, if set, is called after each chunk with the chunks done
	// and their count.
	Progress func(done, total int)
}

func (o Options) withDefaults() Options {
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.Parallelism <= 0 {
		o.Parallelism = DefaultParallelism
	}
	return o
}

// Connect opens a connection to the target database.
type Connect func(ctx context.Context) (*pgx.Conn, error)

// LoadResult is what a load did.
type LoadResult struct {
	Rows    int64 // rows read from the source
	Written int64 // rows written: the others had a newer version in the target already
	Chunks  int
	// From and To are the oldest and newest snapshot positions the rows
	// were read at (the same on MySQL; on MariaDB each worker has its own).
	From, To binlog.Position
}

// Load copies the source table into the sink's target: the table is cut
// into primary key chunks, read by parallel workers each in a consistent
// snapshot, and every row is written with the version of its worker's
// snapshot position, through the same versioned upsert as the stream. A
// streamed change newer than the snapshot wins over the loaded row, an
// older one loses to it, and a key deleted after the snapshot stays
// deleted, so the load may run while the sink streams. since is where the
// stream of the table starts (the CDC checkpoint's since): a snapshot
// older than it would leave a gap, and is refused.
func Load(ctx context.Context, t *sink.Table, cfg binlog.Config, target Connect, since binlog.Position, o Options) (LoadResult, error) {
	o = o.withDefaults()
	var res LoadResult
	chunks, err := chunksOf(ctx, cfg, t, o)
	if err != nil {
		return res, err
	}
	res.Chunks = len(chunks)
	snaps, err := OpenSnapshots(ctx, cfg, min(o.Parallelism, len(chunks)))
	if err != nil {
		return res, err
	}
	defer func() {
		for _, s := range snaps {
			s.Close()
		}
	}()
	sinceV, err := sink.PositionVersion(since.File, since.Pos)
	if err != nil {
		return res, err
	}
	res.From, res.To = snaps[0].Pos, snaps[0].Pos
	for _, s := range snaps {
		if s.Version.Compare(sinceV) < 0 {
			return res, fmt.Errorf("the snapshot at %s is older than where the table's stream starts (%s): events in between would be lost; is the checkpoint of another server?", s.Pos, since)
		}
		if s.Pos.Compare(res.From) < 0 {
			res.From = s.Pos
		}
		if s.Pos.Compare(res.To) > 0 {
			res.To = s.Pos
		}
	}
	var rows, written atomic.Int64
	err = forChunks(ctx, len(chunks), snaps, target, o, func(ctx context.Context, s *Snapshot, pg *pgx.Conn, i int) error {
		batch, err := s.Rows(t, chunks[i])
		if err != nil {
			return err
		}
		tx, err := pg.Begin(ctx)
		if err != nil {
			return fmt.Errorf("PostgreSQL: %w", err)
		}
		defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit a no-op
		n, err := t.Apply(ctx, tx, batch)
		if err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("PostgreSQL: commit: %w", err)
		}
		rows.Add(int64(len(batch)))
		written.Add(int64(n))
		return nil
	})
	res.Rows, res.Written = rows.Load(), written.Load()
	return res, err
}

// chunksOf cuts the table into chunks on a connection of its own.
func chunksOf(ctx context.Context, cfg binlog.Config, t *sink.Table, o Options) ([]Chunk, error) {
	ctl, err := binlog.Connect(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("MySQL at %s: %w", cfg.Addr, err)
	}
	defer ctl.Close()
	return Chunks(ctl, t, o.ChunkSize)
}

// forChunks runs fn on chunks 0..n-1, a worker per snapshot, each with a
// target connection of its own; the first error stops them all.
func forChunks(ctx context.Context, n int, snaps []*Snapshot, target Connect, o Options, fn func(context.Context, *Snapshot, *pgx.Conn, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queue := make(chan int)
	var done atomic.Int64
	var wg sync.WaitGroup
	for _, s := range snaps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pg, err := target(ctx)
			if err != nil {
				cancel(err)
				return
			}
			defer pg.Close(context.Background())
			for ch := range queue {
				if err := fn(ctx, s, pg, ch); err != nil {
					cancel(err)
					return
				}
				if d := done.Add(1); o.Progress != nil {
					o.Progress(int(d), n)
				}
			}
		}()
	}
feed:
	for i := 0; i < n; i++ {
		select {
		case queue <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(queue)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// Capture is what the CDC source's checkpoint says about a table.
type Capture struct {
	Position binlog.Position // every change before it is in Kafka
	Since    binlog.Position // the table's changes are in Kafka from here
}

// LoadCapture reads the CDC job's checkpoint from its datacenter.
func LoadCapture(ctx context.Context, opts []kgo.Opt, cdcJob, table string) (Capture, error) {
	vals, err := checkpoint.Load(ctx, opts, cdcJob)
	if err != nil {
		return Capture{}, err
	}
	b, ok := vals[cdcstate.Key]
	if !ok {
		return Capture{}, fmt.Errorf("%s has no checkpoint yet: start the CDC source (ferry run) before loading or verifying its tables", cdcJob)
	}
	st, err := cdcstate.Decode(b)
	if err != nil {
		return Capture{}, fmt.Errorf("%s: checkpoint: %v", cdcJob, err)
	}
	ts := st.Tables[table]
	if ts == nil {
		return Capture{}, fmt.Errorf("%s does not capture %s yet: apply the plan that adds it, then try again", cdcJob, table)
	}
	return Capture{Position: st.Position, Since: ts.Since}, nil
}

// WaitCapture waits until the CDC job's checkpoint passes pos: every change
// before pos is then committed in Kafka.
func WaitCapture(ctx context.Context, opts []kgo.Opt, cdcJob, table string, pos binlog.Position) error {
	for {
		c, err := LoadCapture(ctx, opts, cdcJob, table)
		if err == nil && c.Position.Compare(pos) >= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("its checkpoint is at %s", c.Position)
			}
			return fmt.Errorf("%s did not capture up to %s in time (%v): is it running?", cdcJob, pos, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// SinkApplied returns a WaitApplied for a sink job: it waits, up to
// timeout, until the CDC job has captured past the position (its
// checkpoint), then until the sink's offsets in the target have reached
// the end of the table's topic as it was at that moment (read_committed).
// Every change before the position is then applied.
func SinkApplied(opts []kgo.Opt, sinkJob string, s *plan.SinkJob, t *sink.Table, target Connect, timeout time.Duration) WaitApplied {
	return func(ctx context.Context, pos binlog.Position) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := WaitCapture(ctx, opts, plan.CDCJobID(s.Source), s.Table, pos); err != nil {
			return err
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return err
		}
		ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, s.Topic)
		cl.Close()
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return fmt.Errorf("end offsets of %s: %w", s.Topic, err)
		}
		pg, err := target(ctx)
		if err != nil {
			return err
		}
		defer pg.Close(context.Background())
		for {
			behind := ""
			stored := map[int32]int64{}
			rows, err := pg.Query(ctx, "SELECT partition, next_offset FROM "+t.OffsetsIdent()+" WHERE job = $1 AND topic = $2", sinkJob, s.Topic)
			if err == nil {
				for rows.Next() {
					var p int32
					var next int64
					if err = rows.Scan(&p, &next); err != nil {
						break
					}
					stored[p] = next
				}
				rows.Close()
				if err == nil {
					err = rows.Err()
				}
			}
			if err != nil {
				return fmt.Errorf("PostgreSQL: offsets of %s: %w", sinkJob, err)
			}
			ends.Each(func(o kadm.ListedOffset) {
				if o.Offset > 0 && stored[o.Partition] < o.Offset && behind == "" {
					behind = fmt.Sprintf("partition %d at offset %d of %d", o.Partition, stored[o.Partition], o.Offset)
				}
			})
			if behind == "" {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s has not applied the changes up to %s within %s (%s): is it running?", sinkJob, pos, timeout, behind)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}
