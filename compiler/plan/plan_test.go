package plan_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// TestDecodeRefuses checks that Decode names what is wrong with a file that
// is not a plan this ferry can run: a newer ferry's plan must never be run
// half understood.
func TestDecodeRefuses(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"newer version", `{"version": 99, "jobs": []}`, "plan version 99 is newer than this ferry understands (version 1): upgrade ferry"},
		{"garbage", `PK\x03\x04 not json`, "not a ferry plan: invalid character 'P' looking for beginning of value"},
		{"empty", ``, "not a ferry plan: unexpected end of JSON input"},
		{"JSON without version", `{"jobs": []}`, "not a ferry plan: no version field"},
		{"JSON of another shape", `[1, 2]`, "not a ferry plan: the file holds a JSON array, a plan is an object"},
		{"version as text", `{"version": "1"}`, "not a ferry plan: version is a JSON string, want a number"},
		{"version zero", `{"version": 0}`, "not a ferry plan: version 0"},
		{"unknown field", `{"version": 1, "jobz": []}`, `invalid plan: json: unknown field "jobz"`},
		{"bad duration", `{"version": 1, "tiers": {"1": "fast"}}`, `invalid plan: time: invalid duration "fast"`},
		{"job twice", `{"version": 1, "jobs": [{"id": "cdc:a"}, {"id": "cdc:a"}]}`, `invalid plan: job "cdc:a" appears twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := plan.Decode([]byte(tt.data))
			if err == nil {
				t.Fatalf("Decode accepted it: %+v", p)
			}
			if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
		})
	}
}

// TestEncodeDecodeRoundTrip checks that a decoded plan encodes to the same
// bytes, whatever order its jobs were in: plans are diffed as text in CI.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	p := basePlan()
	slices.Reverse(p.Jobs)
	first, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := plan.Decode(first)
	if err != nil {
		t.Fatal(err)
	}
	second, err := decoded.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("encode, decode, encode changed the bytes:\n%s\n%s", first, second)
	}
	if !bytes.HasSuffix(first, []byte("}\n")) {
		t.Errorf("plan does not end in a newline")
	}
	if j := decoded.Job("mirror:orders.events:dc2-dc1"); j == nil || j.Mirror.From != "dc2" {
		t.Errorf("Job(mirror:orders.events:dc2-dc1) = %+v", j)
	}
	if j := decoded.Job("mirror:nothing"); j != nil {
		t.Errorf("Job of an unknown ID = %+v, want nil", j)
	}
}

// TestPlanJSONShape pins the field names docs/ documents: the executor,
// CI tools and tests outside the repository read them.
func TestPlanJSONShape(t *testing.T) {
	b, err := basePlan().Encode()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Top  map[string]json.RawMessage
		Jobs []map[string]json.RawMessage `json:"jobs"`
	}
	if err := json.Unmarshal(b, &doc.Top); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(doc.Top), []string{"datacenters", "jobs", "metrics", "shards", "tiers", "version"}; !slices.Equal(got, want) {
		t.Errorf("plan fields %v, want %v", got, want)
	}
	wantJob := map[string][]string{
		"cdc:trading-db":               {"budget", "cdc", "client", "id", "kind", "shard", "tier", "weight"},
		"mirror:orders.events:dc1-dc2": {"budget", "client", "id", "kind", "mirror", "shard", "tier", "weight"},
	}
	for _, j := range doc.Jobs {
		var id string
		_ = json.Unmarshal(j["id"], &id)
		if want, ok := wantJob[id]; ok && !slices.Equal(keys(j), want) {
			t.Errorf("job %s fields %v, want %v", id, keys(j), want)
		}
	}
	if got := string(doc.Top["tiers"]); got != `{
    "1": "300ms",
    "2": "10s",
    "3": "10m",
    "4": "1h"
  }` {
		t.Errorf("tiers written as %s", got)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestDurationString checks the short form plans use, and that it reads
// back as the same duration.
func TestDurationString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                    "0s",
		300 * time.Millisecond:               "300ms",
		10 * time.Minute:                     "10m",
		time.Hour:                            "1h",
		90 * time.Minute:                     "1h30m",
		time.Hour + 5*time.Second:            "1h0m5s",
		2*time.Minute + 500*time.Millisecond: "2m0.5s",
	} {
		got := plan.Duration(d).String()
		if got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(got); err != nil || back != d {
			t.Errorf("%q reads back as %v, %v", got, back, err)
		}
	}
}
