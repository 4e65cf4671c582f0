package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/ferry-pipelines/ferry/schema"
)

// DecodeSpec decodes an object's spec into its schema type, refusing
// unknown fields, and returns it re-encoded: the canonical bytes two equal
// specs share. A CDC source's spec holds no tables (they are objects of
// their own).
func DecodeSpec(kind Kind, raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, fmt.Errorf("%s needs a spec", kind)
	}
	var v any
	switch kind {
	case Datacenter:
		v = new(schema.Datacenter)
	case Shard:
		v = new(schema.Shard)
	case Tier:
		v = new(schema.TierSettings)
	case Metrics:
		v = new(schema.Metrics)
	case Alerts:
		v = new(schema.Alerts)
	case Group:
		v = new(struct{})
	case Mirror:
		v = new(schema.Mirror)
	case CDCSource:
		v = new(schema.CDCSource)
	case CDCTable:
		v = new(schema.CDCTable)
	default:
		return nil, fmt.Errorf("unknown kind %q (kinds: %s)", string(kind), KindNames())
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("invalid %s spec: %v", kind, err)
	}
	if src, ok := v.(*schema.CDCSource); ok {
		if len(src.Tables) > 0 {
			return nil, fmt.Errorf("a CDC source's spec holds no tables: write each table as its own object (kind %s, name SOURCE/DB.TABLE)", string(CDCTable))
		}
		return encodeSource(*src)
	}
	return json.Marshal(v)
}

// encodeSource encodes a CDC source's spec without its tables, which are
// objects of their own.
func encodeSource(src schema.CDCSource) (json.RawMessage, error) {
	b, err := json.Marshal(src)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	delete(fields, "tables")
	return json.Marshal(fields)
}

// Split turns a definition set into its objects, in Kinds order and by
// name within a kind. Their specs are canonical (see DecodeSpec).
func Split(d *schema.Definitions) ([]Object, error) {
	var objs []Object
	add := func(kind Kind, name string, spec any) error {
		b, err := json.Marshal(spec)
		if err != nil {
			return fmt.Errorf("%s: %v", Describe(kind, name), err)
		}
		objs = append(objs, Object{Kind: kind, Name: name, Spec: b})
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(d.Datacenters)) {
		if err := add(Datacenter, name, d.Datacenters[name]); err != nil {
			return nil, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.Shards)) {
		if err := add(Shard, name, d.Shards[name]); err != nil {
			return nil, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.Tiers)) {
		if err := add(Tier, name, d.Tiers[name]); err != nil {
			return nil, err
		}
	}
	if d.Metrics != nil {
		if err := add(Metrics, MetricsName, d.Metrics); err != nil {
			return nil, err
		}
	}
	if d.Alerts != nil {
		if err := add(Alerts, AlertsName, d.Alerts); err != nil {
			return nil, err
		}
	}
	for _, g := range slices.Sorted(slices.Values(d.Groups)) {
		if err := add(Group, g, struct{}{}); err != nil {
			return nil, err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(d.Mirrors)) {
		if err := add(Mirror, name, d.Mirrors[name]); err != nil {
			return nil, err
		}
	}
	var tables []Object
	for _, name := range slices.Sorted(maps.Keys(d.CDC)) {
		src := d.CDC[name]
		for _, t := range src.TableNames() {
			b, err := json.Marshal(src.Tables[t])
			if err != nil {
				return nil, err
			}
			tables = append(tables, Object{Kind: CDCTable, Name: TableName(name, t), Spec: b})
		}
		b, err := encodeSource(src)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", Describe(CDCSource, name), err)
		}
		objs = append(objs, Object{Kind: CDCSource, Name: name, Spec: b})
	}
	return append(objs, tables...), nil
}

// Join assembles stored objects into a definition set, the inverse of
// Split. Every section's map is allocated, so an empty one is `{}`, which
// the schema checks like CUE's own empty structs. Specs must be canonical
// (DecodeSpec). A table whose source is missing is an error naming both.
func Join(objs []Object) (*schema.Definitions, error) {
	d := &schema.Definitions{
		Datacenters: map[string]schema.Datacenter{},
		Shards:      map[string]schema.Shard{},
		Tiers:       map[string]schema.TierSettings{},
		Mirrors:     map[string]schema.Mirror{},
		CDC:         map[string]schema.CDCSource{},
	}
	var tables []Object
	for _, o := range objs {
		var err error
		switch o.Kind {
		case Datacenter:
			err = decodeInto(o, d.Datacenters)
		case Shard:
			err = decodeInto(o, d.Shards)
		case Tier:
			err = decodeInto(o, d.Tiers)
		case Metrics:
			d.Metrics = new(schema.Metrics)
			err = json.Unmarshal(o.Spec, d.Metrics)
		case Alerts:
			d.Alerts = new(schema.Alerts)
			err = json.Unmarshal(o.Spec, d.Alerts)
		case Group:
			d.Groups = append(d.Groups, o.Name)
		case Mirror:
			err = decodeInto(o, d.Mirrors)
		case CDCSource:
			err = decodeInto(o, d.CDC)
		case CDCTable:
			tables = append(tables, o)
		default:
			err = fmt.Errorf("unknown kind")
		}
		if err != nil {
			return nil, fmt.Errorf("stored %s: %v", Describe(o.Kind, o.Name), err)
		}
	}
	for name, src := range d.CDC {
		src.Tables = map[string]schema.CDCTable{}
		d.CDC[name] = src
	}
	for _, o := range tables {
		source, table, ok := SplitTableName(o.Name)
		if !ok {
			return nil, fmt.Errorf("%s: a CDC table's name is SOURCE/DB.TABLE", Describe(o.Kind, o.Name))
		}
		src, ok := d.CDC[source]
		if !ok {
			return nil, fmt.Errorf("%s: there is no %s; create the source first, or delete its tables before the source", Describe(o.Kind, o.Name), Describe(CDCSource, source))
		}
		var t schema.CDCTable
		if err := json.Unmarshal(o.Spec, &t); err != nil {
			return nil, fmt.Errorf("stored %s: %v", Describe(o.Kind, o.Name), err)
		}
		src.Tables[table] = t
	}
	return d, nil
}

func decodeInto[T any](o Object, into map[string]T) error {
	var v T
	if err := json.Unmarshal(o.Spec, &v); err != nil {
		return err
	}
	into[o.Name] = v
	return nil
}
