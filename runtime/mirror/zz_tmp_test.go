package mirror_test

import (
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/schema"
)

func BenchmarkZZFerry(b *testing.B) {
	tier, _ := strconv.Atoi(os.Getenv("ZZTIER"))
	w := newWorld(b, map[string]schema.Mirror{"bench": {Partitions: benchPartitions, Tier: tier}})
	w.backlog("bench")
	b.Logf("rate %.0f", w.mirrorCopy("bench"))
}
func BenchmarkZZBare(b *testing.B) {
	w := newWorld(b, map[string]schema.Mirror{"bench": {Partitions: benchPartitions, Tier: 1}})
	w.backlog("bench")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	g0 := ms.NumGC
	t := time.Now()
	r := w.bareCopy("bench", os.Getenv("ZZEOS") != "")
	runtime.ReadMemStats(&ms)
	b.Logf("rate %.0f gcs %d in %v heap %d MB", r, ms.NumGC-g0, time.Since(t), ms.HeapAlloc>>20)
}
