package control

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
	"github.com/ferry-pipelines/ferry/runtime/systopics"
)

// value is a stored object's record value in ferry.definitions; the record
// key is api.Key(kind, name) and a deletion is a tombstone (nil value), so
// compaction keeps exactly the live objects.
type value struct {
	Spec    json.RawMessage `json:"spec"`
	Version int64           `json:"version"`
	Owner   string          `json:"owner"`
	Updated time.Time       `json:"updated"`
}

// encode returns the record that stores o, or deletes it when o.Spec is
// nil.
func encode(o api.Object) (*kgo.Record, error) {
	r := &kgo.Record{Topic: systopics.Definitions, Key: []byte(api.Key(o.Kind, o.Name))}
	if o.Spec == nil {
		return r, nil
	}
	b, err := json.Marshal(value{Spec: o.Spec, Version: o.Version, Owner: o.Owner, Updated: o.Updated})
	if err != nil {
		return nil, err
	}
	r.Value = b
	return r, nil
}

// decode reads a record of ferry.definitions. deleted is true for a
// tombstone, whose object has only kind and name.
func decode(r *kgo.Record) (o api.Object, deleted bool, err error) {
	kind, name, ok := api.ParseKey(string(r.Key))
	if !ok {
		return o, false, fmt.Errorf("%s offset %d: key %q is not KIND/NAME", systopics.Definitions, r.Offset, r.Key)
	}
	o.Kind, o.Name = kind, name
	if r.Value == nil {
		return o, true, nil
	}
	var v value
	if err := json.Unmarshal(r.Value, &v); err != nil {
		return o, false, fmt.Errorf("%s offset %d (%s): %v", systopics.Definitions, r.Offset, r.Key, err)
	}
	o.Spec, o.Version, o.Owner, o.Updated = v.Spec, v.Version, v.Owner, v.Updated
	return o, false, nil
}
