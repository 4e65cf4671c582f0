package event

import (
	"fmt"
	"strconv"
	"time"
)

// DebeziumVersion is the Debezium release whose MySQL event format ferry
// writes; it goes into source.version.
const DebeziumVersion = "2.7.0.Final"

// Operations.
const (
	OpCreate = 'c'
	OpUpdate = 'u'
	OpDelete = 'd'
	OpRead   = 'r'
)

// Snapshot markers of source.snapshot.
const (
	SnapshotFalse       = "false"
	SnapshotTrue        = "true"
	SnapshotLast        = "last"
	SnapshotIncremental = "incremental"
)

// Source is the source block of an event.
type Source struct {
	Name     string    // topicPrefix
	Time     time.Time // commit time: binlog header (seconds) or a GTID event's microseconds; the read time in a snapshot
	Snapshot string    // SnapshotFalse for binlog events
	ServerID uint32
	GTID     string
	File     string
	Pos      uint64
	Row      int
	Thread   int64 // 0: unknown (null)
}

// Change is one row change of a table.
type Change struct {
	Op     byte
	Before []any
	After  []any
	Source Source
}

// AppendKey writes the event key: the primary key columns as a JSON
// object. A table without a primary key has a null key: nothing is
// appended (so AppendKey(nil, row) is nil).
func (t *Table) AppendKey(buf []byte, row []any) ([]byte, error) {
	if len(t.Key) == 0 {
		return buf, nil
	}
	if len(row) != len(t.Columns) {
		return buf, fmt.Errorf("%s: row has %d values for %d columns", t.FullName(), len(row), len(t.Columns))
	}
	buf = append(buf, '{')
	for i, k := range t.Key {
		if i > 0 {
			buf = append(buf, ',')
		}
		c := &t.Columns[k]
		buf = appendString(buf, c.Name)
		buf = append(buf, ':')
		var err error
		if buf, err = AppendValue(buf, c, row[k]); err != nil {
			return buf, fmt.Errorf("%s.%s: %w", t.FullName(), c.Name, err)
		}
	}
	return append(buf, '}'), nil
}

// AppendRow writes a row as the envelope's before/after struct: every
// column in table order.
func (t *Table) AppendRow(buf []byte, row []any) ([]byte, error) {
	if row == nil {
		return append(buf, "null"...), nil
	}
	if len(row) != len(t.Columns) {
		return buf, fmt.Errorf("%s: row has %d values for %d columns", t.FullName(), len(row), len(t.Columns))
	}
	buf = append(buf, '{')
	for i := range t.Columns {
		if i > 0 {
			buf = append(buf, ',')
		}
		c := &t.Columns[i]
		buf = appendString(buf, c.Name)
		buf = append(buf, ':')
		var err error
		if buf, err = AppendValue(buf, c, row[i]); err != nil {
			return buf, fmt.Errorf("%s.%s: %w", t.FullName(), c.Name, err)
		}
	}
	return append(buf, '}'), nil
}

// AppendValue writes the event value (the envelope) of a change processed
// at now:
//
//	{"before":..,"after":..,"source":{..},"transaction":null,"op":"c","ts_ms":..,"ts_us":..,"ts_ns":..}
func (t *Table) AppendEnvelope(buf []byte, ch *Change, now time.Time) ([]byte, error) {
	var err error
	buf = append(buf, `{"before":`...)
	if buf, err = t.AppendRow(buf, ch.Before); err != nil {
		return buf, err
	}
	buf = append(buf, `,"after":`...)
	if buf, err = t.AppendRow(buf, ch.After); err != nil {
		return buf, err
	}
	buf = append(buf, `,"source":`...)
	buf = t.appendSource(buf, &ch.Source)
	buf = append(buf, `,"transaction":null,"op":"`...)
	buf = append(buf, ch.Op)
	buf = append(buf, `","ts_ms":`...)
	buf = appendTimes(buf, now, `,"ts_us":`, `,"ts_ns":`)
	return append(buf, '}'), nil
}

func appendTimes(buf []byte, t time.Time, us, ns string) []byte {
	buf = strconv.AppendInt(buf, t.UnixMilli(), 10)
	buf = append(buf, us...)
	buf = strconv.AppendInt(buf, t.UnixMicro(), 10)
	buf = append(buf, ns...)
	return strconv.AppendInt(buf, t.UnixNano(), 10)
}

// appendSource writes the MySQL source block in the field order of
// Debezium's MySqlSourceInfoStructMaker.
func (t *Table) appendSource(buf []byte, s *Source) []byte {
	buf = append(buf, `{"version":"`+DebeziumVersion+`","connector":"mysql","name":`...)
	buf = appendString(buf, s.Name)
	buf = append(buf, `,"ts_ms":`...)
	buf = strconv.AppendInt(buf, s.Time.UnixMilli(), 10)
	buf = append(buf, `,"snapshot":`...)
	snap := s.Snapshot
	if snap == "" {
		snap = SnapshotFalse
	}
	buf = appendString(buf, snap)
	buf = append(buf, `,"db":`...)
	buf = appendString(buf, t.DB)
	buf = append(buf, `,"sequence":null,"ts_us":`...)
	buf = strconv.AppendInt(buf, s.Time.UnixMicro(), 10)
	buf = append(buf, `,"ts_ns":`...)
	buf = strconv.AppendInt(buf, s.Time.UnixNano(), 10)
	buf = append(buf, `,"table":`...)
	buf = appendString(buf, t.Name)
	buf = append(buf, `,"server_id":`...)
	buf = strconv.AppendUint(buf, uint64(s.ServerID), 10)
	buf = append(buf, `,"gtid":`...)
	if s.GTID == "" {
		buf = append(buf, "null"...)
	} else {
		buf = appendString(buf, s.GTID)
	}
	buf = append(buf, `,"file":`...)
	buf = appendString(buf, s.File)
	buf = append(buf, `,"pos":`...)
	buf = strconv.AppendUint(buf, s.Pos, 10)
	buf = append(buf, `,"row":`...)
	buf = strconv.AppendInt(buf, int64(s.Row), 10)
	buf = append(buf, `,"thread":`...)
	if s.Thread == 0 {
		buf = append(buf, "null"...)
	} else {
		buf = strconv.AppendInt(buf, s.Thread, 10)
	}
	return append(buf, `,"query":null}`...)
}

// Record is one Kafka record of a change: a key and a value (nil for a
// tombstone), plus Debezium's key-change headers on a primary key update.
type Record struct {
	Key     []byte
	Value   []byte
	Headers map[string][]byte
}

// Encode turns a change into its Kafka records as Debezium writes them: one
// record for a create, update or read; a delete and its tombstone for a
// delete; and for an update that changes the primary key, a delete of the
// old key (with header __debezium.newkey), its tombstone, and a create of
// the new key (with header __debezium.oldkey).
func (t *Table) Encode(ch *Change, now time.Time) ([]Record, error) {
	switch ch.Op {
	case OpCreate, OpRead:
		return t.one(ch, ch.After, now)
	case OpDelete:
		recs, err := t.one(ch, ch.Before, now)
		if err != nil {
			return nil, err
		}
		return append(recs, Record{Key: recs[0].Key}), nil
	case OpUpdate:
		oldKey, err := t.AppendKey(nil, ch.Before)
		if err != nil {
			return nil, err
		}
		newKey, err := t.AppendKey(nil, ch.After)
		if err != nil {
			return nil, err
		}
		if string(oldKey) == string(newKey) {
			return t.one(ch, ch.After, now)
		}
		del := &Change{Op: OpDelete, Before: ch.Before, Source: ch.Source}
		dv, err := t.AppendEnvelope(nil, del, now)
		if err != nil {
			return nil, err
		}
		cr := &Change{Op: OpCreate, After: ch.After, Source: ch.Source}
		cv, err := t.AppendEnvelope(nil, cr, now)
		if err != nil {
			return nil, err
		}
		return []Record{
			{Key: oldKey, Value: dv, Headers: map[string][]byte{"__debezium.newkey": newKey}},
			{Key: oldKey},
			{Key: newKey, Value: cv, Headers: map[string][]byte{"__debezium.oldkey": oldKey}},
		}, nil
	}
	return nil, fmt.Errorf("unknown operation %q", ch.Op)
}

func (t *Table) one(ch *Change, keyRow []any, now time.Time) ([]Record, error) {
	key, err := t.AppendKey(nil, keyRow)
	if err != nil {
		return nil, err
	}
	val, err := t.AppendEnvelope(make([]byte, 0, 256+32*len(t.Columns)), ch, now)
	if err != nil {
		return nil, err
	}
	return []Record{{Key: key, Value: val}}, nil
}

// Tail returns the part of an envelope after "after": the source block,
// transaction, op and the processing times. Rows that share all of these
// (an initial load's chunk) format it once and append it with
// AppendWithTail.
func (t *Table) Tail(op byte, src *Source, now time.Time) []byte {
	buf := append([]byte(nil), `,"source":`...)
	buf = t.appendSource(buf, src)
	buf = append(buf, `,"transaction":null,"op":"`...)
	buf = append(buf, op)
	buf = append(buf, `","ts_ms":`...)
	buf = appendTimes(buf, now, `,"ts_us":`, `,"ts_ns":`)
	return append(buf, '}')
}

// AppendWithTail writes the envelope of a row without a before image (a
// create or a read) whose tail came from Tail: the same bytes as
// AppendEnvelope.
func (t *Table) AppendWithTail(buf []byte, after []any, tail []byte) ([]byte, error) {
	buf = append(buf, `{"before":null,"after":`...)
	buf, err := t.AppendRow(buf, after)
	if err != nil {
		return buf, err
	}
	return append(buf, tail...), nil
}
