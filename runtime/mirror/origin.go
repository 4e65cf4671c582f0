package mirror

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/compiler/plan"
	"github.com/ferry-pipelines/ferry/runtime/headers"
)

// Verdicts on a source record.
const (
	copyRecord = iota // a client's record: copy it with origin headers
	skipRecord        // mirrored here from elsewhere: never copy it again
	badOrigin         // carries ferry.origin, but not one ferry wrote
)

// classify applies the loop rule. A record without ferry.origin is a
// client's and is copied. A record whose ferry.origin names a datacenter it
// could have been mirrored from (one of the plan's, other than the one it
// is read in: origins) and whose ferry.origin.offset is a decimal offset as
// a mirror job writes it (digits only, no sign, no leading zero) was
// written by a mirror job and is skipped. Anything else carrying either
// header (an unknown datacenter, a missing or malformed offset, a header
// twice, an offset without an origin) is forged or corrupt: copying it
// would pass on a false origin and skipping it would drop a client's record
// silently, so it goes to the dead letter queue, where `ferry dlq` shows
// and can replay it.
func classify(r *kgo.Record, origins map[string]bool) (verdict int, why string) {
	// Every copy a mirror reads back comes through here: the values are
	// looked at in place, not copied.
	var origin, offset []byte
	var origins1, offsets int
	for _, h := range r.Headers {
		switch h.Key {
		case headers.Origin:
			origin = h.Value
			origins1++
		case headers.OriginOffset:
			offset = h.Value
			offsets++
		}
	}
	switch {
	case origins1 == 0 && offsets == 0:
		return copyRecord, ""
	case origins1 == 0:
		return badOrigin, "record has a ferry.origin.offset header but no ferry.origin header"
	case origins1 > 1 || offsets > 1:
		return badOrigin, "record carries ferry.origin or ferry.origin.offset more than once"
	case !origins[string(origin)]:
		return badOrigin, "ferry.origin " + strconv.Quote(string(origin)) + " names no datacenter this record could have been mirrored from"
	case offsets == 0:
		return badOrigin, "record has ferry.origin but no ferry.origin.offset header"
	case !isOffset(offset):
		return badOrigin, "ferry.origin.offset " + strconv.Quote(string(offset)) + " is not a decimal offset as a mirror writes it"
	}
	return skipRecord, ""
}

// maxOffset is the largest int64, as strconv.AppendInt writes it.
const maxOffset = "9223372036854775807"

// isOffset reports whether b is a non-negative int64 in the form
// strconv.AppendInt writes it.
func isOffset(b []byte) bool {
	if len(b) == 0 || len(b) > len(maxOffset) || len(b) > 1 && b[0] == '0' {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	// Digits of the same length compare as their numbers do.
	return len(b) < len(maxOffset) || string(b) <= maxOffset
}

// copyOf is the record written to the target: same topic, partition, key,
// value, timestamp and headers, plus the origin headers.
func copyOf(r *kgo.Record, origin string) *kgo.Record {
	return new(copyRec).fill(r, origin)
}

// fill makes c the copy of r (see copyOf) and returns it. A mirror copies
// every record it reads, so the copy, its headers and their values are one
// allocation unless the source has many headers or a long origin name.
func (c *copyRec) fill(r *kgo.Record, origin string) *kgo.Record {
	hs := c.headers[:0]
	if len(r.Headers)+2 > len(c.headers) {
		hs = make([]kgo.RecordHeader, 0, len(r.Headers)+2)
	}
	hs = append(hs, r.Headers...)
	values := append(c.values[:0], origin...)
	n := len(values)
	values = strconv.AppendInt(values, r.Offset, 10)
	hs = append(hs,
		kgo.RecordHeader{Key: headers.Origin, Value: values[:n:n]},
		kgo.RecordHeader{Key: headers.OriginOffset, Value: values[n:]},
	)
	c.record = kgo.Record{
		Topic:     r.Topic,
		Partition: r.Partition,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   hs,
		Timestamp: r.Timestamp,
	}
	return &c.record
}

// origins are the datacenters a record in from may have been mirrored
// from: every datacenter of the plan but from itself.
func origins(p *plan.Plan, from string) map[string]bool {
	dcs := map[string]bool{}
	for name := range p.Datacenters {
		if name != from {
			dcs[name] = true
		}
	}
	return dcs
}
