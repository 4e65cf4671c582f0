package plan_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// FuzzDecode feeds Decode arbitrary bytes (seeds: testdata/fuzz/FuzzDecode,
// the golden plans of testdata/compiler and broken ones). It must never
// panic; an error is one line; and a plan it accepts encodes and decodes
// back to the same value (an empty map or list and none are the same).
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := plan.Decode(data)
		if err != nil {
			if p != nil {
				t.Fatalf("Decode returned a plan and the error %v", err)
			}
			if msg := err.Error(); msg == "" || strings.Contains(msg, "\n") {
				t.Fatalf("error %q is not one line", msg)
			}
			return
		}
		enc, err := p.Encode()
		if err != nil {
			t.Fatalf("a decoded plan does not encode: %v", err)
		}
		again, err := plan.Decode(enc)
		if err != nil {
			t.Fatalf("a re-encoded plan does not decode: %v\n%s", err, enc)
		}
		if diff := cmp.Diff(p, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("decode, encode, decode changed the plan (-first +second):\n%s", diff)
		}
	})
}
