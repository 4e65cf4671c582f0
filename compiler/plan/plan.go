// Package plan is the compiler's output and the executor's input: a JSON
// document listing every job with its shard, tier, budget and client
// settings. Encoding is deterministic, so the same definitions give the same
// bytes and a reviewer can diff two plans.
package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ferry-pipelines/ferry/schema"
)

// Version is the plan format this ferry writes and the newest it reads.
const Version = 1

// Job kinds.
const (
	KindMirror  = "mirror"
	KindCDC     = "cdc"
	KindOffsets = "offsets"
	KindSink    = "sink"
)

// Plan is a compiled definition set.
type Plan struct {
	Version     int                          `json:"version"`
	Datacenters map[string]schema.Datacenter `json:"datacenters"`
	Shards      map[string]schema.Shard      `json:"shards"`
	// Tiers maps a tier ("1".."4") to its latency budget.
	Tiers   map[string]Duration `json:"tiers"`
	Metrics Metrics             `json:"metrics"`
	// Alerts tunes the Prometheus rules written from the plan (ferry
	// compile --alerts); nil for the defaults.
	Alerts *schema.Alerts `json:"alerts,omitempty"`
	Jobs   []Job          `json:"jobs"`
}

// Metrics holds the metrics reporter's settings.
type Metrics struct {
	Interval Duration `json:"interval"`
}

// Job is one unit of work placed on a shard: a mirror direction of a topic
// or a CDC source.
type Job struct {
	ID      string         `json:"id"`
	Kind    string         `json:"kind"`
	Shard   string         `json:"shard"`
	Tier    int            `json:"tier"`
	Budget  Duration       `json:"budget"`
	Weight  int            `json:"weight"`
	Client  ClientSettings `json:"client"`
	Mirror  *MirrorJob     `json:"mirror,omitempty"`
	CDC     *CDCJob        `json:"cdc,omitempty"`
	Offsets *OffsetsJob    `json:"offsets,omitempty"`
	Sink    *SinkJob       `json:"sink,omitempty"`
}

// ClientSettings are the Kafka client settings derived from the job's tier:
// Tier 1 favours latency, Tier 4 throughput. docs/language.md documents the table.
type ClientSettings struct {
	Linger         Duration `json:"linger"`
	BatchMaxBytes  int32    `json:"batchMaxBytes"`
	FetchMaxWait   Duration `json:"fetchMaxWait"`
	FetchMinBytes  int32    `json:"fetchMinBytes"`
	Compression    string   `json:"compression"`
	CommitInterval Duration `json:"commitInterval"`
}

// MirrorJob copies one topic from one datacenter to another.
type MirrorJob struct {
	Topic             string            `json:"topic"`
	Partitions        int               `json:"partitions"`
	From              string            `json:"from"`
	To                string            `json:"to"`
	ReplicationFactor int               `json:"replicationFactor,omitempty"`
	Config            map[string]string `json:"config,omitempty"`
}

// CDCJob captures the tables of one MySQL source into one datacenter.
type CDCJob struct {
	Source      string                  `json:"source"`
	MySQL       schema.MySQL            `json:"mysql"`
	Datacenter  string                  `json:"datacenter"`
	TopicPrefix string                  `json:"topicPrefix"`
	Snapshot    schema.SnapshotSettings `json:"snapshot"`
	Tables      []CDCTable              `json:"tables"`
}

// OffsetsJob keeps the committed offsets of consumer groups translated from
// one datacenter to another, for groups inactive in the target, every
// budget of its tier.
type OffsetsJob struct {
	From   string         `json:"from"`
	To     string         `json:"to"`
	Groups []string       `json:"groups"` // the patterns of groups:
	Topics []OffsetsTopic `json:"topics"` // the topics mirrored from From to To
}

// OffsetsTopic is a mirrored topic and every datacenter it is mirrored
// between: the origins its records can have.
type OffsetsTopic struct {
	Topic       string   `json:"topic"`
	Datacenters []string `json:"datacenters"`
}

// SinkJob writes one CDC table's events from its topic into a PostgreSQL
// table. It carries the source's MySQL connection too: the target table is
// made from the source's column types, and `ferry load` and `ferry verify`
// read the source.
type SinkJob struct {
	Source     string              `json:"source"`     // the CDC source
	Table      string              `json:"table"`      // the source table, "db.table"
	Topic      string              `json:"topic"`      // its events
	Datacenter string              `json:"datacenter"` // where the topic is
	MySQL      schema.MySQL        `json:"mysql"`
	Postgres   schema.PostgresSink `json:"postgres"`
	Target     string              `json:"target"` // "schema.table"
	Columns    map[string]string   `json:"columns,omitempty"`
	Snapshot   string              `json:"snapshot"`      // the table's snapshot mode
	Key        []string            `json:"key,omitempty"` // columns replacing the primary key
}

// CDCTable is one captured table with its topic and its own tier.
type CDCTable struct {
	Name     string   `json:"name"`
	Database string   `json:"database"`
	Table    string   `json:"table"`
	Topic    string   `json:"topic"`
	Tier     int      `json:"tier"`
	Budget   Duration `json:"budget"`
	Snapshot string   `json:"snapshot"`
	Rate     int      `json:"rate,omitempty"`
	Key      []string `json:"key,omitempty"` // columns replacing the primary key
}

// Job returns the job with the ID, or nil. It searches Jobs in ID order,
// as the compiler, Encode and Decode leave them.
func (p *Plan) Job(id string) *Job {
	i := sort.Search(len(p.Jobs), func(i int) bool { return p.Jobs[i].ID >= id })
	if i < len(p.Jobs) && p.Jobs[i].ID == id {
		return &p.Jobs[i]
	}
	return nil
}

// Encode writes the plan as indented JSON with a final newline. Jobs are
// kept in ID order and maps are written sorted, so the output is
// deterministic.
func (p *Plan) Encode() ([]byte, error) {
	sort.Slice(p.Jobs, func(i, j int) bool { return p.Jobs[i].ID < p.Jobs[j].ID })
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Decode reads a plan, refusing one written by a newer ferry.
func Decode(data []byte) (*Plan, error) {
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return nil, fmt.Errorf("not a ferry plan: %s is a JSON %s, want a number", te.Field, te.Value)
		case errors.As(err, &te):
			return nil, fmt.Errorf("not a ferry plan: the file holds a JSON %s, a plan is an object", te.Value)
		}
		return nil, fmt.Errorf("not a ferry plan: %v", err)
	}
	switch {
	case head.Version == nil:
		return nil, fmt.Errorf("not a ferry plan: no version field")
	case *head.Version > Version:
		return nil, fmt.Errorf("plan version %d is newer than this ferry understands (version %d): upgrade ferry", *head.Version, Version)
	case *head.Version < 1:
		return nil, fmt.Errorf("not a ferry plan: version %d", *head.Version)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("invalid plan: %v", err)
	}
	sort.Slice(p.Jobs, func(i, j int) bool { return p.Jobs[i].ID < p.Jobs[j].ID })
	for i := 1; i < len(p.Jobs); i++ {
		if p.Jobs[i].ID == p.Jobs[i-1].ID {
			return nil, fmt.Errorf("invalid plan: job %q appears twice", p.Jobs[i].ID)
		}
	}
	return &p, nil
}

// Duration is a time.Duration written as a Go duration string ("300ms").
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String is the Go duration without zero trailing units: "10m", "1h30m",
// "300ms", where time.Duration prints "10m0s" and "1h30m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"300ms\": %v", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MirrorJobID names the job that mirrors topic from one datacenter to another.
func MirrorJobID(topic, from, to string) string { return "mirror:" + topic + ":" + from + "-" + to }

// CDCJobID names the job that captures a CDC source.
func CDCJobID(source string) string { return "cdc:" + source }

// OffsetsJobID names the job that translates group offsets from one
// datacenter to another.
func OffsetsJobID(from, to string) string { return "offsets:" + from + "-" + to }

// SinkJobID names the job that writes a CDC table ("db.table") of a source
// into its sink.
func SinkJobID(source, table string) string { return "sink:" + source + ":" + table }

// Datacenter is the Kafka cluster a job writes to: where its checkpoints,
// dead letters and metrics go. A sink writes to PostgreSQL; its datacenter
// is the one it consumes from.
func (j *Job) Datacenter() string {
	switch {
	case j.Mirror != nil:
		return j.Mirror.To
	case j.CDC != nil:
		return j.CDC.Datacenter
	case j.Offsets != nil:
		return j.Offsets.To
	case j.Sink != nil:
		return j.Sink.Datacenter
	}
	return ""
}
