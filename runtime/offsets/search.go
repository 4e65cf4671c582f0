package offsets

import "context"

// backwardSpan is the first stretch of offsets lastBefore reads; each
// further stretch doubles, so reading back d offsets costs at most 2d.
const backwardSpan = 256

// lastBefore returns, for each origin of want, the seq of its last record
// before offset c. An origin missing from the result has no record left
// before c: none was ever there, or retention or compaction removed it.
func (l *partLog) lastBefore(ctx context.Context, c int64, want []string) (map[string]int64, error) {
	found := map[string]int64{}
	wanted := map[string]bool{}
	for _, o := range want {
		wanted[o] = true
	}
	hi, span := min(c, l.end), int64(backwardSpan)
	for hi > l.start && len(found) < len(want) {
		lo := max(l.start, hi-span)
		last := map[string]int64{}
		err := l.scan(ctx, lo, hi, func(e entry) bool {
			if wanted[e.origin] {
				last[e.origin] = e.seq
			}
			return true
		})
		if err != nil {
			return nil, err
		}
		for o, seq := range last {
			if _, ok := found[o]; !ok {
				found[o] = seq
			}
		}
		hi, span = lo, 2*span
	}
	return found, nil
}

// located is where firstAbove found the first record of an origin past a
// threshold.
type located struct {
	at   int64 // its offset, or the log's end when there is none yet
	prev int64 // the seq of the origin's last record before it, -1 if none
}

// firstAbove finds the first record of origin whose seq is above t. The
// log's own records are in offset order, so that is the first own record
// at or after t+1. Another origin's records appear in increasing seq, so
// a binary search over the partition finds it: a probe at m reads forward
// to the first record of the origin at or after m, and whether that
// record's seq is above t is monotone in m.
func (l *partLog) firstAbove(ctx context.Context, origin string, t int64) (located, error) {
	ofOrigin := func(e entry) bool { return e.origin == origin }
	if origin == l.dc.name {
		e, ok, err := l.first(ctx, t+1, l.end, ofOrigin)
		if !ok || err != nil {
			return located{at: l.end, prev: -1}, err
		}
		return located{at: e.offset, prev: -1}, nil
	}
	// Invariant: the origin's records before lo have seq <= t (the last of
	// them is prev); found, the first of the origin's records at or after
	// hi, has seq > t or does not exist.
	lo, hi := l.start, l.end
	found := located{at: l.end, prev: -1}
	for lo < hi {
		m := lo + (hi-lo)/2
		e, ok, err := l.first(ctx, m, hi, ofOrigin)
		if err != nil {
			return found, err
		}
		switch {
		case ok && e.seq <= t:
			lo, found.prev = e.offset+1, e.seq
		case ok:
			hi, found.at = m, e.offset
		default:
			hi = m
		}
	}
	return found, nil
}
