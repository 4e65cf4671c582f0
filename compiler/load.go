package compiler

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/cue/token"

	"github.com/ferry-pipelines/ferry/schema"
)

// schemaFile is the name the embedded schema takes inside the loaded
// directory. Positions in it are never shown to users; their own field is.
const schemaFile = "zz_ferry_schema.cue"

// source is a loaded definition set: the evaluated CUE value, the schema
// evaluated with it.
type source struct {
	dir   string // absolute
	value cue.Value
	// schemaPath is the absolute name of the schema overlay; positions in it
	// are not the user's.
	schemaPath string
	// virtual is set for definitions that come from no file of the user's:
	// their problems carry paths only.
	virtual bool
}

// loadDir is the first stage: it parses every .cue file of dir (package
// pipelines) and evaluates them together with the embedded schema, so that
// CUE itself checks types, closedness and bounds.
func loadDir(dir string) (*source, Errors) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, Errors{{Msg: err.Error()}}
	}
	info, err := os.Stat(dir) // the error names dir as the user gave it
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Errors{{Msg: fmt.Sprintf("%s: no such directory", dir)}}
	}
	if err != nil {
		return nil, Errors{{Msg: fmt.Sprintf("cannot read definitions: %v", err)}}
	}
	if !info.IsDir() {
		return nil, Errors{{Msg: fmt.Sprintf("%s is not a directory of .cue files", dir)}}
	}
	matches, _ := filepath.Glob(filepath.Join(abs, "*.cue"))
	if len(matches) == 0 {
		return nil, Errors{{Msg: fmt.Sprintf("no .cue files in %s", dir)}}
	}
	return loadOverlay(abs, nil)
}

// loadOverlay evaluates dir's .cue files, plus the extra files (absolute
// name to content) and the schema.
func loadOverlay(dir string, extra map[string][]byte) (*source, Errors) {
	schemaPath := filepath.Join(dir, schemaFile)
	overlay := map[string]load.Source{schemaPath: load.FromBytes(schema.CUE)}
	for name, b := range extra {
		overlay[name] = load.FromBytes(b)
	}
	insts := load.Instances([]string{"."}, &load.Config{Dir: dir, Overlay: overlay, Package: "pipelines"})
	if len(insts) != 1 {
		return nil, Errors{{Msg: "expected one CUE package in " + dir}}
	}
	inst := insts[0]
	src := &source{dir: dir, schemaPath: schemaPath}
	if inst.Err != nil {
		return nil, src.convert(inst.Err)
	}
	if errs := src.foreignPackages(inst.IgnoredFiles); len(errs) > 0 {
		return nil, errs
	}
	src.value = cuecontext.New().BuildInstance(inst)
	if err := src.value.Err(); err != nil && src.value.IncompleteKind() == cue.BottomKind && len(src.value.Path().Selectors()) == 0 {
		// The build failed as a whole (a reference to an undefined name,
		// say): there is no value to check further.
		if _, ierr := src.value.Fields(); ierr != nil {
			return nil, src.convert(err)
		}
	}
	return src, nil
}

// foreignPackages reports .cue files of the directory that declare another
// package: a silently skipped file would be a silently skipped pipeline.
func (s *source) foreignPackages(ignored []*build.File) Errors {
	var errs Errors
	for _, f := range ignored {
		if !strings.HasSuffix(f.Filename, ".cue") || f.ExcludeReason == nil {
			continue
		}
		errs = append(errs, &Error{Pos: filePos(f.Filename), Msg: "not part of the definitions: " + f.ExcludeReason.Error() + " (every file must say package pipelines)"})
	}
	return errs
}

// convert turns CUE errors into positioned ferry errors: the position is
// the first one in the user's files, the path drops nothing, and messages
// CUE words for its own developers are reworded for ferry's users.
func (s *source) convert(err error) Errors {
	var errs Errors
	byPath := map[string][]cueerrors.Error{}
	var order []string
	for _, e := range cueerrors.Errors(err) {
		p := pathString(e.Path())
		if _, ok := byPath[p]; !ok {
			order = append(order, p)
		}
		byPath[p] = append(byPath[p], e)
	}
	for _, p := range order {
		errs = append(errs, s.reword(p, byPath[p])...)
	}
	return errs
}

// userPos returns the first position of e in a user's file.
func (s *source) userPos(e cueerrors.Error) token.Pos {
	for _, p := range cueerrors.Positions(e) {
		if p.Filename() != s.schemaPath {
			return p
		}
	}
	return token.NoPos
}

// filePos is the start of a file, for problems with the file as a whole.
func filePos(name string) token.Pos {
	f := token.NewFile(name, -1, 1)
	return f.Pos(0, token.NoRelPos)
}
