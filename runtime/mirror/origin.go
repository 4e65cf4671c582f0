package mirror

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header names of the mirroring contract (design.md).
const (
	HeaderOrigin       = "ferry.origin"
	HeaderOriginOffset = "ferry.origin.offset"
)

// Verdicts on a source record.
const (
	copyRecord = iota // a client's record: copy it with origin headers
	skipRecord        // mirrored here from elsewhere: never copy it again
	badOrigin         // carries ferry.origin, but not one ferry wrote
)

// classify applies the loop rule. A record without ferry.origin is a
// client's and is copied. A record whose ferry.origin names a datacenter of
// the plan and whose ferry.origin.offset is a non-negative decimal was
// written by a mirror job and is skipped. Anything else carrying
// ferry.origin (an unknown datacenter, a missing or malformed offset, the
// header twice) is forged or corrupt: copying it would pass on a false
// origin and skipping it would drop a client's record silently, so it goes
// to the dead letter queue, where `ferry dlq` shows and can replay it.
func classify(r *kgo.Record, datacenters map[string]bool) (verdict int, why string) {
	var origins, offsets []string
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderOrigin:
			origins = append(origins, string(h.Value))
		case HeaderOriginOffset:
			offsets = append(offsets, string(h.Value))
		}
	}
	if len(origins) == 0 {
		if len(offsets) > 0 {
			return badOrigin, "record has a ferry.origin.offset header but no ferry.origin header"
		}
		return copyRecord, ""
	}
	switch {
	case len(origins) > 1 || len(offsets) > 1:
		return badOrigin, "record carries ferry.origin or ferry.origin.offset more than once"
	case !datacenters[origins[0]]:
		return badOrigin, "ferry.origin " + strconv.Quote(origins[0]) + " names no datacenter of the plan"
	case len(offsets) == 0:
		return badOrigin, "record has ferry.origin but no ferry.origin.offset header"
	}
	if off, err := strconv.ParseInt(offsets[0], 10, 64); err != nil || off < 0 {
		return badOrigin, "ferry.origin.offset " + strconv.Quote(offsets[0]) + " is not a non-negative decimal offset"
	}
	return skipRecord, ""
}

// copyOf is the record written to the target: same topic, partition, key,
// value, timestamp and headers, plus the origin headers.
func copyOf(r *kgo.Record, origin string) *kgo.Record {
	headers := make([]kgo.RecordHeader, 0, len(r.Headers)+2)
	headers = append(headers, r.Headers...)
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderOrigin, Value: []byte(origin)},
		kgo.RecordHeader{Key: HeaderOriginOffset, Value: strconv.AppendInt(nil, r.Offset, 10)},
	)
	return &kgo.Record{
		Topic:     r.Topic,
		Partition: r.Partition,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   headers,
		Timestamp: r.Timestamp,
	}
}
