package compiler_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/load"
	"golang.org/x/tools/txtar"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/internal/golden"
	"github.com/ferry-pipelines/ferry/schema"
)

// The golden cases live in testdata/compiler/*.txtar. Each holds the .cue
// files of one definition directory and exactly one expected outcome:
//
//	errors     the lines `ferry validate` prints, file names relative to
//	           the case's directory
//	plan.json  the plan `ferry compile` writes
//
// FERRY_UPDATE_GOLDEN=1 rewrites the outcome section a case already has
// (write a new case with an empty one). It never turns an errors case into
// a plan case or back: that flip is a failure, so a regression cannot
// slip in through an update.
const (
	errorsFile = "errors"
	planFile   = "plan.json"
)

var goldenDir = filepath.Join("..", "testdata", "compiler")

// goldenCase is one golden and the outcome it expects.
type goldenCase struct {
	*golden.Archive
	want string // errorsFile or planFile
}

func loadGoldenCases(t *testing.T) []goldenCase {
	t.Helper()
	dir, err := filepath.Abs(goldenDir) // the cases chdir
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	for _, a := range golden.Load(t, filepath.Join(dir, "*.txtar"), 30) {
		c := goldenCase{Archive: a}
		for _, name := range []string{errorsFile, planFile} {
			if _, ok := a.Section(name); ok {
				if c.want != "" {
					t.Fatalf("%s: has both %s and %s", a.Path, errorsFile, planFile)
				}
				c.want = name
			}
		}
		if c.want == "" {
			t.Fatalf("%s: has neither %s nor %s", a.Path, errorsFile, planFile)
		}
		cases = append(cases, c)
	}
	return cases
}

// writeInputs writes the case's files into a new temporary directory and
// returns it. The outcome files are not .cue files: ferry skips them.
func (c goldenCase) writeInputs(t *testing.T) string {
	t.Helper()
	fsys, err := txtar.FS(c.Archive.Archive)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, fsys); err != nil {
		t.Fatal(err)
	}
	return dir
}

// compileCase compiles the case from inside its directory, so that error
// positions read "a.cue:1:2" as they would for a user running ferry there.
// It returns the outcome section the result fills and its content.
func (c goldenCase) compileCase(t *testing.T) (string, []byte) {
	t.Helper()
	t.Chdir(c.writeInputs(t))
	p, _, err := compiler.CompileDir(".")
	if err != nil {
		if _, ok := err.(compiler.Errors); !ok {
			t.Fatalf("CompileDir returned %T, want compiler.Errors: %v", err, err)
		}
		return errorsFile, []byte(err.Error() + "\n")
	}
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return planFile, b
}

// TestGolden compiles every case and compares the outcome byte for byte.
func TestGolden(t *testing.T) {
	for _, c := range loadGoldenCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			got, out := c.compileCase(t)
			if got != c.want {
				t.Fatalf("compiling gave %s, the case expects %s:\n%s", got, c.want, out)
			}
			c.Check(t, got, out)
		})
	}
}

// TestGoldenDeterministic compiles each valid case a second time, from a
// fresh directory: the plan must be the same bytes, as CI diffs rely on it.
func TestGoldenDeterministic(t *testing.T) {
	for _, c := range loadGoldenCases(t) {
		if c.want != planFile {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			_, first := c.compileCase(t)
			_, second := c.compileCase(t)
			if !bytes.Equal(first, second) {
				t.Errorf("two compilations differ:\n--- first\n%s--- second\n%s", first, second)
			}
		})
	}
}

// position matches the positions of an error line: its "file:line:col: "
// prefix and the " (file:line:col)" a message gives for a second place.
var position = regexp.MustCompile(`^[^ :]+:\d+:\d+: | \([^ ()]+:\d+:\d+\)`)

// TestCompileDefinitionsMatchesFiles feeds each case's definitions to
// CompileDefinitions as Go values, the way the control API does, and
// expects the same problems without positions. Of two declarations of one
// topic or serverID, files report the later by position and Go values the
// later by section and name; the cases keep the two orders alike. Cases
// whose files say
// something Go values cannot (a wrong type, a literal password, a missing
// field, an extra one) are skipped: the round trip from CUE data through
// schema.Definitions must be lossless.
func TestCompileDefinitionsMatchesFiles(t *testing.T) {
	compared := 0
	for _, c := range loadGoldenCases(t) {
		defs, ok := c.definitions(t)
		if !ok {
			continue
		}
		compared++
		t.Run(c.Name, func(t *testing.T) {
			var got []string
			p, err := compiler.CompileDefinitions(defs)
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			switch c.want {
			case planFile:
				if err != nil {
					t.Fatalf("CompileDefinitions: %v", err)
				}
				b, err := p.Encode()
				if err != nil {
					t.Fatal(err)
				}
				if want, _ := c.Section(planFile); !bytes.Equal(b, want) {
					t.Errorf("plan differs from %s:\n%s", planFile, b)
				}
			case errorsFile:
				var want []string
				errs, _ := c.Section(errorsFile)
				for _, line := range strings.Split(strings.TrimSuffix(string(errs), "\n"), "\n") {
					want = append(want, position.ReplaceAllString(line, ""))
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("messages differ\n--- got\n%s\n--- want\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
		})
	}
	if compared < 15 {
		t.Errorf("only %d cases round-trip through schema.Definitions, want at least 15", compared)
	}
}

// definitions evaluates the case's files as plain CUE, without ferry's
// schema, and decodes them into schema.Definitions. ok is false when the
// files do not evaluate alone or the decoding loses or changes anything.
func (c goldenCase) definitions(t *testing.T) (*schema.Definitions, bool) {
	t.Helper()
	insts := load.Instances([]string{"."}, &load.Config{Dir: c.writeInputs(t), Package: "pipelines"})
	if len(insts) != 1 || insts[0].Err != nil || len(insts[0].IgnoredFiles) > 0 {
		return nil, false
	}
	v := cuecontext.New().BuildInstance(insts[0])
	data, err := v.MarshalJSON()
	if err != nil {
		return nil, false
	}
	var defs schema.Definitions
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if dec.Decode(&defs) != nil {
		return nil, false
	}
	again, err := json.Marshal(&defs)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if json.Unmarshal(data, &a) != nil || json.Unmarshal(again, &b) != nil || !jsonEqual(a, b) {
		return nil, false
	}
	return &defs, true
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a) // encoding/json sorts map keys
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
