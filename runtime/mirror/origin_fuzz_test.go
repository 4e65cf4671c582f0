package mirror

import (
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/headers"
)

// fuzzOrigins is the world of FuzzOriginHeader: a job reading dc1 in a plan
// of dc1, dc2 and dc3, so a record read there may come from dc2 or dc3.
var fuzzOrigins = map[string]bool{"dc2": true, "dc3": true}

// parseHeaders reads headers written one per line as key=value (a line
// without "=" is a key with an empty value).
func parseHeaders(s string) []kgo.RecordHeader {
	if s == "" {
		return nil
	}
	var hs []kgo.RecordHeader
	for _, line := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(line, "=")
		hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return hs
}

var canonicalOffset = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)

// oracle is docs/mirroring.md's rule ("What is copied", the loop rule), written apart from
// classify: no origin header at all is a client's record (copy); exactly one
// ferry.origin naming a datacenter of the plan other than the one read, and
// exactly one ferry.origin.offset that is a decimal int64 as a mirror writes
// it, is a mirrored record (skip); anything else is dead-lettered.
func oracle(hs []kgo.RecordHeader) int {
	count := map[string][]string{}
	for _, h := range hs {
		count[h.Key] = append(count[h.Key], string(h.Value))
	}
	origin, offset := count["ferry.origin"], count["ferry.origin.offset"]
	if len(origin) == 0 && len(offset) == 0 {
		return copyRecord
	}
	if len(origin) != 1 || len(offset) != 1 || (origin[0] != "dc2" && origin[0] != "dc3") {
		return badOrigin
	}
	n, ok := new(big.Int).SetString(offset[0], 10)
	if !canonicalOffset.MatchString(offset[0]) || !ok || !n.IsInt64() {
		return badOrigin
	}
	return skipRecord
}

// FuzzOriginHeader checks the loop rule on forged and malformed origin
// headers (seeds: testdata/fuzz/FuzzOriginHeader, one per form): the verdict is the oracle's, a dead letter always says why, and a
// copy carries exactly one origin header pair naming the source and its
// offset, with everything else of the record unchanged.
func FuzzOriginHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string, offset int64) {
		hs := parseHeaders(raw)
		r := &kgo.Record{Topic: "orders", Partition: 3, Offset: offset, Key: []byte("k"), Value: []byte("v"),
			Headers: hs, Timestamp: time.UnixMilli(1700000000000)}
		verdict, why := classify(r, fuzzOrigins)
		if want := oracle(hs); verdict != want {
			t.Fatalf("headers %q: verdict %d (%s), the rule says %d", raw, verdict, why, want)
		}
		if (verdict == badOrigin) != (why != "") {
			t.Fatalf("headers %q: verdict %d with reason %q", raw, verdict, why)
		}
		if verdict != copyRecord {
			return
		}
		c := copyOf(r, "dc1")
		if c.Topic != r.Topic || c.Partition != r.Partition || string(c.Key) != "k" || string(c.Value) != "v" || !c.Timestamp.Equal(r.Timestamp) {
			t.Fatalf("copy %+v differs from the source record", c)
		}
		if len(c.Headers) != len(hs)+2 {
			t.Fatalf("copy has %d headers, want the source's %d plus 2", len(c.Headers), len(hs))
		}
		for i, h := range hs {
			if c.Headers[i].Key != h.Key || string(c.Headers[i].Value) != string(h.Value) {
				t.Fatalf("copy header %d is %+v, want %+v", i, c.Headers[i], h)
			}
		}
		var origins, offsets []string
		for _, h := range c.Headers {
			switch h.Key {
			case headers.Origin:
				origins = append(origins, string(h.Value))
			case headers.OriginOffset:
				offsets = append(offsets, string(h.Value))
			}
		}
		if len(origins) != 1 || len(offsets) != 1 || origins[0] != "dc1" || offsets[0] != strconv.FormatInt(offset, 10) {
			t.Fatalf("copy carries ferry.origin %q and ferry.origin.offset %q, want one pair dc1/%d", origins, offsets, offset)
		}
		// In the target, the copy is a mirrored record: never copied again
		// (when its offset is one a source partition can have).
		if v, why := classify(c, map[string]bool{"dc1": true}); offset >= 0 && v != skipRecord {
			t.Fatalf("the copy of offset %d would be classified %d (%s) in the target, want skipped", offset, v, why)
		}
	})
}

// TestCopyOf: a copy carries the source's headers, then its origin and
// offset, whether they fit the copy's own room or not.
func TestCopyOf(t *testing.T) {
	long := strings.Repeat("datacenter-", 5)
	for _, c := range []struct {
		origin  string
		headers int
		offset  int64
	}{
		{"dc1", 0, 0},
		{"dc1", 2, 12345},
		{"dc1", 5, 1<<63 - 1},
		{long, 1, 1<<63 - 1},
	} {
		r := &kgo.Record{Topic: "t", Partition: 3, Key: []byte("k"), Value: []byte("v"), Offset: c.offset}
		var want []string
		for i := range c.headers {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: strconv.Itoa(i), Value: []byte("h")})
			want = append(want, strconv.Itoa(i)+"=h")
		}
		want = append(want, headers.Origin+"="+c.origin, headers.OriginOffset+"="+strconv.FormatInt(c.offset, 10))
		cp := copyOf(r, c.origin)
		var got []string
		for _, h := range cp.Headers {
			got = append(got, h.Key+"="+string(h.Value))
		}
		if strings.Join(got, " ") != strings.Join(want, " ") || cp.Partition != 3 || string(cp.Key) != "k" {
			t.Errorf("copyOf(%d headers, origin %q, offset %d): headers %q, want %q", c.headers, c.origin, c.offset, got, want)
		}
	}
}

// TestIsOffset: the offsets a mirror writes, at the edges of int64.
func TestIsOffset(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "7": true, "9223372036854775807": true, "1000000000000000000": true,
		"": false, "01": false, "-1": false, "+1": false, "1 ": false, "9223372036854775808": false,
		"9999999999999999999": false, "10000000000000000000": false,
	} {
		if got := isOffset([]byte(s)); got != want {
			t.Errorf("isOffset(%q) = %v, want %v", s, got, want)
		}
	}
}
