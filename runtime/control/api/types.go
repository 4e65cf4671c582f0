// Package api is the control API's wire format and its Go client: the
// objects a definition set is stored as (one per datacenter, shard, tier
// override, metrics settings, mirror, CDC source and CDC table), the
// operations that change them, and the errors the API answers with.
// `ferry apply` and the Terraform provider speak it through Client; the
// server side lives in package control.
package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Kind is the kind of a stored object.
type Kind string

// The kinds of stored objects. A CDC table is its own object, named
// "SOURCE/DB.TABLE", so a source's tables can be owned and changed one by
// one.
const (
	Datacenter Kind = "datacenter"
	Shard      Kind = "shard"
	Tier       Kind = "tier"
	Metrics    Kind = "metrics"
	Alerts     Kind = "alerts"
	Group      Kind = "group"
	Mirror     Kind = "mirror"
	CDCSource  Kind = "cdc_source"
	CDCTable   Kind = "cdc_table"
)

// Kinds lists every kind in dependency order: an object refers only to
// objects of kinds before its own, so creating in this order and deleting
// in the reverse one never leaves a dangling reference.
var Kinds = []Kind{Datacenter, Shard, Tier, Metrics, Alerts, Group, Mirror, CDCSource, CDCTable}

// MetricsName and AlertsName name the one metrics settings object and the
// one alerts settings object. A group object is named by the consumer
// group, or glob of groups, it stands for (CUE: groups: [...]); its spec
// is {}.
const (
	MetricsName = "metrics"
	AlertsName  = "alerts"
)

// OwnerHeader is the request header that names the writer:
// "terraform:WORKSPACE", "cue:DIR" for `ferry apply DIR`, or anything
// else. Without it the writer is DefaultOwner.
const OwnerHeader = "Ferry-Owner"

// Owners of stored objects: the Terraform provider's by default (in
// workspace "default"), and the API's default.
const (
	OwnerTerraform = "terraform:default"
	DefaultOwner   = "api"
)

// TerraformOwner is the owner the Terraform provider writes as in a
// workspace, unless configured otherwise.
func TerraformOwner(workspace string) string { return "terraform:" + workspace }

// OwnedElsewhere is the refusal of a write to an object another owner
// holds, as the API, ferry apply and the provider word it.
func OwnedElsewhere(kind Kind, name, owner string) string {
	return fmt.Sprintf("%s is owned by %s; change it there or delete it there first, or have an admin transfer it (POST /v1/transfer)", Describe(kind, name), owner)
}

// CUEOwner is the owner `ferry apply DIR` writes as.
func CUEOwner(dir string) string { return "cue:" + dir }

// String is the kind as messages name it.
func (k Kind) String() string {
	switch k {
	case CDCSource:
		return "CDC source"
	case CDCTable:
		return "CDC table"
	case Metrics:
		return "metrics settings"
	case Alerts:
		return "alerts settings"
	case Group:
		return "consumer group"
	}
	return string(k)
}

// KindNames lists the kinds as the API spells them, for messages.
func KindNames() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool {
	for _, known := range Kinds {
		if k == known {
			return true
		}
	}
	return false
}

// Key is the Kafka record key of an object: "KIND/NAME".
func Key(kind Kind, name string) string { return string(kind) + "/" + name }

// ParseKey splits a record key into kind and name.
func ParseKey(key string) (Kind, string, bool) {
	kind, name, ok := strings.Cut(key, "/")
	if !ok || !Kind(kind).Valid() || name == "" {
		return "", "", false
	}
	return Kind(kind), name, true
}

// TableName names a CDC table object: "SOURCE/DB.TABLE".
func TableName(source, table string) string { return source + "/" + table }

// SplitTableName splits a CDC table object's name into source and table.
func SplitTableName(name string) (source, table string, ok bool) {
	source, table, ok = strings.Cut(name, "/")
	return source, table, ok && source != "" && table != ""
}

// Object is one stored definition.
type Object struct {
	Kind Kind   `json:"kind"`
	Name string `json:"name"`
	// Spec is the object in the shape of its schema type (schema.Mirror,
	// schema.CDCSource without tables, ...), as JSON.
	Spec json.RawMessage `json:"spec"`
	// Version counts the object's writes: 1 when created, +1 per update.
	Version int64 `json:"version"`
	// Owner is who wrote it; only the owner may change or delete it.
	Owner   string    `json:"owner"`
	Updated time.Time `json:"updated"`
}

// Describe names the object in messages: mirror "orders.events".
func Describe(kind Kind, name string) string { return fmt.Sprintf("%s %q", kind, name) }

// Op is one change in a Batch.
type Op struct {
	Op   string          `json:"op"` // OpPut or OpDelete
	Kind Kind            `json:"kind"`
	Name string          `json:"name"`
	Spec json.RawMessage `json:"spec,omitempty"` // for OpPut
	// Version is the version the writer last read: the write is refused
	// (409) when the object's version differs. 0 means "must not exist"
	// (create only). Omitted, the write applies to whatever is stored.
	Version *int64 `json:"version,omitempty"`
}

// Operations of a batch.
const (
	OpPut    = "put"
	OpDelete = "delete"
)

// Batch changes several objects at once: all or none, checked as one
// resulting definition set.
type Batch struct {
	Ops []Op `json:"ops"`
	// DryRun checks the batch (versions, owners, the whole resulting set
	// compiling) without writing it.
	DryRun bool `json:"dryRun,omitempty"`
}

// Transfer hands a stored object to another owner (POST /v1/transfer, an
// admin's): its spec stays, so its jobs run on. To "" releases it: whoever
// writes it next (a Terraform import, too) becomes its owner.
type Transfer struct {
	Kind Kind   `json:"kind"`
	Name string `json:"name"`
	To   string `json:"to"`
	// Version, when set, is the version the transfer is based on: 409
	// when the object changed since.
	Version *int64 `json:"version,omitempty"`
}

// Actions reported for each op of a batch.
const (
	Created   = "created"
	Updated   = "updated"
	Deleted   = "deleted"
	Unchanged = "unchanged"
)

// Result is what happened to one object of a batch.
type Result struct {
	Kind    Kind   `json:"kind"`
	Name    string `json:"name"`
	Action  string `json:"action"`
	Version int64  `json:"version"` // after the write; 0 once deleted
}

// BatchResult answers a Batch, one Result per op in order.
type BatchResult struct {
	Results []Result `json:"results"`
}

// Error is the API's error answer: a one-line message and, for definitions
// the compiler refuses, every problem as "path: message".
type Error struct {
	Status   int      `json:"-"`
	Message  string   `json:"error"`
	Problems []string `json:"problems,omitempty"`
}

// Error prints the message, then each problem on its own line.
func (e *Error) Error() string {
	if len(e.Problems) == 0 {
		return e.Message
	}
	return e.Message + "\n" + strings.Join(e.Problems, "\n")
}

// Errorf builds an Error with an HTTP status.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}
