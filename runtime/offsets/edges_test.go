package offsets_test

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/ferry-pipelines/ferry/runtime/offsets"
)

func TestTranslateEdges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(w *world)
		commit map[int32]int64 // nil: no commit at all
		want   offsets.Partition
	}{{
		name:   "empty partition",
		setup:  func(*world) {},
		commit: map[int32]int64{0: 0},
		want:   offsets.Partition{Source: 0, Target: 0},
	}, {
		name:   "no commit",
		setup:  func(w *world) { w.write("dc1", 0, 3); w.mirrorAll() },
		commit: nil,
		want:   offsets.Partition{Source: -1, Target: -1, Note: "no committed offset in dc1: not translated"},
	}, {
		name: "nothing consumed",
		setup: func(w *world) {
			w.write("dc1", 0, 3)
			w.write("dc2", 0, 2)
			w.mirrorAll()
		},
		commit: map[int32]int64{0: 0},
		want:   offsets.Partition{Source: 0, Target: 0},
	}, {
		name: "everything consumed and mirrored",
		setup: func(w *world) {
			w.write("dc1", 0, 3) // dc1 0-2
			w.write("dc2", 0, 2) // dc2 0-1
			w.mirrorAll()        // dc1 3-4 + marker 5, dc2 2-4 + marker 5
		},
		commit: map[int32]int64{0: 6},
		want:   offsets.Partition{Source: 6, Target: 6},
	}, {
		name: "consumed but not mirrored yet",
		setup: func(w *world) {
			w.write("dc2", 0, 2)                 // dc2 0-1
			w.mirror("dc2", "dc1", 0, -1, false) // dc1 0-1 + marker 2
			w.write("dc1", 0, 4)                 // dc1 3-6
		},
		commit: map[int32]int64{0: 7},
		want:   offsets.Partition{Source: 7, Target: 2, Rereads: 4, Pending: 4},
	}, {
		name:   "README example",
		setup:  readmeExample,
		commit: map[int32]int64{0: 7},
		want:   offsets.Partition{Source: 7, Target: 5, Rereads: 2},
	}, {
		name:   "README example, further on",
		setup:  readmeExample,
		commit: map[int32]int64{0: 10},
		want:   offsets.Partition{Source: 10, Target: 9, Rereads: 1, Pending: 1},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil, "t", 1)
			tc.setup(w)
			if tc.commit != nil {
				w.commit("dc1", "g", tc.commit)
			}
			res, err := w.translator().TranslateGroup(w.ctx, "g", w.topics())
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Topic = "t"
			if len(res) != 1 {
				t.Fatalf("got %+v", res)
			}
			res[0].Read = 0
			if res[0] != tc.want {
				t.Fatalf("got  %+v\nwant %+v", res[0], tc.want)
			}
		})
	}
}

// readmeExample writes the partitions of docs/failover.md's worked example
// ("Consumer group failover"): a0 a1 b0 b1 | a5 a6 b5 | a9 b9, mirroring
// both ways after the first two steps only.
func readmeExample(w *world) {
	w.write("dc1", 0, 2) // a0 a1
	w.write("dc2", 0, 2) // b0 b1
	w.mirrorAll()
	w.write("dc1", 0, 2) // a5 a6
	w.write("dc2", 0, 1) // b5
	w.mirrorAll()
	w.write("dc1", 0, 1) // a9
	w.write("dc2", 0, 1) // b9
}

// TestTranslateAfterRetention: retention removed the part of dc1 that told
// how far the group had read dc2's records. The target falls back to the
// start of dc2's own records: more re-reads, never a missed record, and
// the result says so. The re-reads it reports are a lower bound: those
// retention hid are not counted.
func TestTranslateAfterRetention(t *testing.T) {
	w := newWorld(t, nil, "t", 1)
	w.write("dc2", 0, 3)                 // dc2 0-2
	w.mirror("dc2", "dc1", 0, -1, false) // dc1 0-2 + marker 3
	w.write("dc1", 0, 10)                // dc1 4-13
	w.mirrorAll()                        // dc2 3-12 + marker 13
	w.commit("dc1", "g", map[int32]int64{0: 10})
	if _, err := kadm.NewClient(w.clients["dc1"]).DeleteRecords(w.ctx, kadm.Offsets{"t": {0: {Topic: "t", At: 5}}}); err != nil {
		t.Fatal(err)
	}
	res, err := w.translator().TranslateGroup(w.ctx, "g", w.topics())
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	tr := newTruth(w.logs["dc1"][0], w.read("dc2")[0], 10)
	if n := tr.missed(r.Target); n > 0 {
		t.Fatalf("target %d misses %d records", r.Target, n)
	}
	// Exact: target 9 (dc1's offset 10 in dc2), nothing read again. The
	// re-reads reported count only what the remaining log shows consumed.
	if r.Target != 0 || r.Rereads != 6 || tr.rereads(0) != 9 || tr.fewest(14) != 0 {
		t.Fatalf("got %+v; want the conservative target 0 with 6 re-reads known (9 in truth, 0 at best)", r)
	}
	if !strings.Contains(r.Note, "retention removed dc1's records before offset 5") {
		t.Fatalf("note %q does not say why the target is early", r.Note)
	}
}

func TestTranslateRefusals(t *testing.T) {
	w := newWorld(t, nil, "t", 1)
	if _, err := kadm.NewClient(w.clients["dc1"]).CreateTopic(w.ctx, 1, 1, nil, "only.dc1"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		topic offsets.Topic
		want  string
	}{
		{offsets.Topic{Name: "only.dc1", Datacenters: w.dcs}, "topic only.dc1 does not exist in dc2"},
		{offsets.Topic{Name: "t", Datacenters: []string{"dc1", "dc3"}}, "topic t is not mirrored between dc1 and dc2 (it is between [dc1 dc3])"},
	} {
		_, err := w.translator().Translate(w.ctx, []offsets.Topic{tc.topic}, map[string]map[int32]int64{tc.topic.Name: {0: 0}})
		if err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}
