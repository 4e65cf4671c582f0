// Package schema holds ferry's definition language: the CUE schema every
// pipeline directory is checked against (schema.cue, embedded) and the Go
// types the checked definitions decode into. The control API and the
// Terraform provider speak the same types as JSON, so one shape serves all
// three ways of declaring pipelines.
package schema

import (
	_ "embed"
	"sort"
)

// CUE is the schema source. Its #Pipelines definition is unified with every
// definition directory.
//
//go:embed schema.cue
var CUE []byte

// Definitions is a whole definition set: what a directory of .cue files, or
// the objects stored behind the control API, declare.
type Definitions struct {
	Datacenters map[string]Datacenter   `json:"datacenters"`
	Shards      map[string]Shard        `json:"shards,omitempty"`
	Tiers       map[string]TierSettings `json:"tiers,omitempty"`
	Mirrors     map[string]Mirror       `json:"mirrors,omitempty"`
	CDC         map[string]CDCSource    `json:"cdc,omitempty"`
	Metrics     *Metrics                `json:"metrics,omitempty"`
	Alerts      *Alerts                 `json:"alerts,omitempty"`
	Groups      []string                `json:"groups,omitempty"`
}

// Datacenter is one Kafka cluster ferry reads from and writes to.
type Datacenter struct {
	Kafka Kafka `json:"kafka"`
}

// Kafka holds the connection settings of a cluster.
type Kafka struct {
	Brokers []string `json:"brokers"`
	TLS     *TLS     `json:"tls,omitempty"`
	SASL    *SASL    `json:"sasl,omitempty"`
}

// TLS configures TLS to a server; the paths are read when a job starts.
type TLS struct {
	CA                 string `json:"ca,omitempty"`
	Cert               string `json:"cert,omitempty"`
	Key                string `json:"key,omitempty"`
	ServerName         string `json:"serverName,omitempty"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
}

// SASL configures SASL authentication to Kafka.
type SASL struct {
	Mechanism string `json:"mechanism"`
	User      string `json:"user"`
	Password  Secret `json:"password"`
}

// Secret references a secret by environment variable or file. Exactly one
// of the two is set; the value itself never appears in definitions or plans.
type Secret struct {
	Env  string `json:"env,omitempty"`
	File string `json:"file,omitempty"`
}

// Shard is a named group of executor processes that jobs are placed on.
type Shard struct {
	Tiers     []int `json:"tiers"`
	MaxJobs   int   `json:"maxJobs,omitempty"`
	MaxWeight int   `json:"maxWeight,omitempty"`
}

// Accepts reports whether the shard runs jobs of the tier.
func (s Shard) Accepts(tier int) bool {
	for _, t := range s.Tiers {
		if t == tier {
			return true
		}
	}
	return false
}

// TierSettings overrides a tier's latency budget.
type TierSettings struct {
	Budget string `json:"budget"`
}

// Mirror is a topic mirrored under the same name between datacenters.
type Mirror struct {
	Partitions        int               `json:"partitions"`
	Tier              int               `json:"tier"`
	Shard             string            `json:"shard,omitempty"`
	Datacenters       []string          `json:"datacenters,omitempty"`
	ReplicationFactor int               `json:"replicationFactor,omitempty"`
	Config            map[string]string `json:"config,omitempty"`
}

// CDCSource is one MySQL or MariaDB server captured from its binlog.
type CDCSource struct {
	MySQL       MySQL               `json:"mysql"`
	Datacenter  string              `json:"datacenter"`
	TopicPrefix string              `json:"topicPrefix"`
	Shard       string              `json:"shard,omitempty"`
	Snapshot    *SnapshotSettings   `json:"snapshot,omitempty"`
	Tables      map[string]CDCTable `json:"tables"`
}

// TableNames returns the source's tables ("db.table") in order.
func (s CDCSource) TableNames() []string {
	names := make([]string, 0, len(s.Tables))
	for n := range s.Tables {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// MySQL holds the connection to the captured server.
type MySQL struct {
	Address   string     `json:"address"`
	User      string     `json:"user"`
	Password  Secret     `json:"password"`
	ServerID  uint32     `json:"serverID"`
	Flavor    string     `json:"flavor,omitempty"`
	TLS       *TLS       `json:"tls,omitempty"`
	Heartbeat *Heartbeat `json:"heartbeat,omitempty"`
	// TimeAdjuster is Debezium's enable.time.adjuster; nil is true.
	TimeAdjuster *bool `json:"timeAdjuster,omitempty"`
}

// RawYears reports whether DATE and DATETIME years 0-99 are written as
// stored, the time adjuster being off.
func (m MySQL) RawYears() bool { return m.TimeAdjuster != nil && !*m.TimeAdjuster }

// Heartbeat configures the table ferry writes NOW(6) into, so that latency
// is known to the millisecond where the binlog carries whole seconds only.
type Heartbeat struct {
	Interval string `json:"interval,omitempty"`
	Database string `json:"database,omitempty"`
}

// SnapshotSettings tunes the initial load of a source's tables.
type SnapshotSettings struct {
	ChunkSize   int `json:"chunkSize,omitempty"`
	Parallelism int `json:"parallelism,omitempty"`
}

// Snapshot modes of a CDC table.
const (
	SnapshotInitial    = "initial"
	SnapshotNoData     = "no_data"
	SnapshotWhenNeeded = "when_needed"
	SnapshotNever      = "never"
)

// CDCTable is one captured table of a source.
type CDCTable struct {
	Tier     int    `json:"tier"`
	Snapshot string `json:"snapshot,omitempty"`
	// Key names the columns that identify a row, replacing the primary key.
	Key  []string `json:"key,omitempty"`
	Rate int      `json:"rate,omitempty"`
	Sink *Sink    `json:"sink,omitempty"`
}

// Sink writes a CDC table's events into a PostgreSQL table.
type Sink struct {
	Postgres PostgresSink `json:"postgres"`
	// Table is the target, "schema.table"; empty: public.<source table>.
	Table string `json:"table,omitempty"`
	// Columns renames source columns in the target; the others keep their
	// names.
	Columns map[string]string `json:"columns,omitempty"`
	Shard   string            `json:"shard,omitempty"`
}

// PostgresSink is the connection to the target PostgreSQL database.
type PostgresSink struct {
	DSN Secret `json:"dsn"`
}

// Metrics configures the metrics reporter.
type Metrics struct {
	Interval string `json:"interval,omitempty"`
}

// Alerts tunes the generated Prometheus rules: labels on every alert, and
// per tier ("1".."4") its alerts' severity and waits.
type Alerts struct {
	Labels map[string]string     `json:"labels,omitempty"`
	Tiers  map[string]TierAlerts `json:"tiers,omitempty"`
}

// TierAlerts are one tier's alert settings; empty fields take the defaults.
type TierAlerts struct {
	Severity     string `json:"severity,omitempty"`
	AtRiskFor    string `json:"atRiskFor,omitempty"`
	BreachingFor string `json:"breachingFor,omitempty"`
}
