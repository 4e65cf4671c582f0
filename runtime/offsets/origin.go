package offsets

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/headers"
)

// entry is a record as translation sees it: where it sits in the
// partition read, and which original record it is. Every record was first
// written by a client to one datacenter (its origin) at one offset there
// (its seq); mirroring copies it to the other datacenters keeping the order
// of each origin's records, so in every datacenter the records of one
// origin appear in increasing seq.
type entry struct {
	offset int64
	origin string
	seq    int64
}

// entryOf identifies r, read in datacenter here. A record carrying exactly
// one ferry.origin naming another datacenter of the topic and exactly one
// ferry.origin.offset as a mirror writes it (digits, no sign, no leading
// zero) is that datacenter's record at that offset. Any other record is here's own: a client's, or one
// whose origin headers ferry did not write, which the mirror never copies
// (it dead-letters it), so it exists here only.
func entryOf(r *kgo.Record, here string, origins map[string]bool) entry {
	own := entry{offset: r.Offset, origin: here, seq: r.Offset}
	var origin, offset string
	var nOrigin, nOffset int
	for _, h := range r.Headers {
		switch h.Key {
		case headers.Origin:
			origin, nOrigin = string(h.Value), nOrigin+1
		case headers.OriginOffset:
			offset, nOffset = string(h.Value), nOffset+1
		}
	}
	if nOrigin != 1 || nOffset != 1 || origin == here || !origins[origin] {
		return own
	}
	seq, err := strconv.ParseInt(offset, 10, 64)
	if err != nil || seq < 0 || strconv.FormatInt(seq, 10) != offset {
		return own
	}
	return entry{offset: r.Offset, origin: origin, seq: seq}
}
