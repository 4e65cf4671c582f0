package offsets_test

import (
	"testing"
	"time"
)

// BenchmarkTranslate measures what translating one partition costs against
// its size: both datacenters writing alike (dense), and dc2 writing one
// record for every 20,000 of dc1's (sparse: the read back from the
// committed offset to dc2's last record is long). Each operation
// translates ten commits spread over the partition; records-read is per
// translation, share-read its part of both partitions' records (a
// translator without the binary search reads them all).
func BenchmarkTranslate(b *testing.B) {
	for _, tc := range []struct {
		name       string
		rounds     int
		dc1, dc2   int // records per round
		dc2Every   int // dc2 writes every dc2Every rounds
		translates int
	}{
		{"dense", 100, 1000, 1000, 1, 10},
		{"sparse", 200, 1000, 1, 20, 10},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w := newWorld(b, nil, "bench", 1)
			start := time.Now()
			for r := range tc.rounds {
				w.write("dc1", 0, tc.dc1)
				if r%tc.dc2Every == 0 {
					w.write("dc2", 0, tc.dc2)
				}
				w.mirrorAll()
			}
			ends, endsB := w.ends("dc1"), w.ends("dc2")
			b.Logf("%s: %d offsets in dc1, %d in dc2, written in %s", tc.name, ends[0], endsB[0], time.Since(start).Round(time.Millisecond))
			tr := w.translator()
			b.ResetTimer()
			var read int64
			for range b.N {
				for i := range tc.translates {
					c := ends[0] * int64(2*i+1) / int64(2*tc.translates)
					res, err := tr.Translate(w.ctx, w.topics(), map[string]map[int32]int64{"bench": {0: c}})
					if err != nil {
						b.Fatal(err)
					}
					read += res[0].Read
				}
			}
			b.StopTimer()
			n := float64(b.N * tc.translates)
			b.ReportMetric(float64(b.Elapsed().Microseconds())/n/1000, "ms/translation")
			b.ReportMetric(float64(read)/n, "records-read/translation")
			b.ReportMetric(float64(read)/n/float64(ends[0]+endsB[0]), "share-read")
		})
	}
}
