// Package cdcstate is the checkpoint of a CDC source job, as it writes it
// to ferry.checkpoints in the same Kafka transaction as its events, and as
// the sink's bulk load and verify read it to know where capture stands.
package cdcstate

import (
	"encoding/json"
	"time"

	"github.com/ferry-pipelines/ferry/runtime/cdc/binlog"
)

// Key is the key of a CDC job's checkpoint in ferry.checkpoints.
const Key = "binlog"

// State is a CDC job's checkpoint, written in the same Kafka transaction
// as the events it stands for: the binlog position right after the last
// MySQL transaction whose events are in Kafka, the server that position is
// of (after a failover to another server the job resumes from the GTID
// set instead), the GTID set executed up to there, and each table's
// capture state (where its capture began, how far its initial load got).
type State struct {
	binlog.Position
	Tables map[string]*TableState `json:"tables"`
}

// TableState is one table's part of the checkpoint.
type TableState struct {
	Mode string `json:"mode"`
	// Since is the binlog position from which the table's changes are in
	// Kafka. For no_data it is the hand-over point for a separate bulk
	// load: load a consistent snapshot taken at or after Since, and let
	// the sink keep the newer of a bulk row and a streamed event.
	Since binlog.Position `json:"since"`
	// Snapshot is the initial load's progress; nil when there is none.
	Snapshot *SnapState `json:"snapshot,omitempty"`
}

// SnapState is an initial load's progress. Chunks are emitted in primary
// key order, so one key says how far it got.
type SnapState struct {
	Done bool `json:"done"`
	// After holds the primary key values (as text) of the last row of the
	// last chunk in Kafka; nil before the first chunk.
	After [][]byte `json:"after,omitempty"`
	Rows  int64    `json:"rows"`
	// Incremental marks a load that started while the job was streaming
	// (add_table): its rows carry source.snapshot "incremental".
	Incremental bool      `json:"incremental,omitempty"`
	Started     time.Time `json:"started"`
}

// Encode is the checkpoint record's value.
func (s *State) Encode() []byte {
	b, _ := json.Marshal(s)
	return b
}

// Decode reads a checkpoint record's value.
func Decode(b []byte) (*State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	if s.Tables == nil {
		s.Tables = map[string]*TableState{}
	}
	return &s, nil
}
