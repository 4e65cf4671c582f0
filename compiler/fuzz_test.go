package compiler_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ferry-pipelines/ferry/compiler"
	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// positioned is an error line as `ferry validate` prints it: a position in
// one of the user's files (never in ferry's schema), then the message.
var positioned = regexp.MustCompile(`^(?:.*/)?[ab]\.cue:[0-9]+:[0-9]+: \S`)

// FuzzCompileDir compiles arbitrary content as a directory of two .cue
// files (seeds: testdata/fuzz/FuzzCompileDir, made from the golden cases in
// testdata/compiler and pipelines/). It must never panic, and it must give
// either a plan that encodes and decodes back, or a list of problems each
// positioned in a.cue or b.cue, whole-file problems at line 1 column 1.
func FuzzCompileDir(f *testing.F) {
	f.Fuzz(func(t *testing.T, a, b string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "a.cue"), []byte(a), 0o644); err != nil {
			t.Fatal(err)
		}
		if b != "" {
			if err := os.WriteFile(filepath.Join(dir, "b.cue"), []byte(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p, defs, err := compiler.CompileDir(dir)
		if err == nil {
			if p == nil || defs == nil {
				t.Fatal("no error and no plan")
			}
			enc, err := p.Encode()
			if err != nil {
				t.Fatalf("the plan does not encode: %v", err)
			}
			if _, err := plan.Decode(enc); err != nil {
				t.Fatalf("the plan does not decode: %v\n%s", err, enc)
			}
			return
		}
		var errs compiler.Errors
		if !errors.As(err, &errs) {
			t.Fatalf("error %T is not a list of problems: %v", err, err)
		}
		if len(errs) == 0 {
			t.Fatal("an empty list of problems")
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !positioned.MatchString(line) {
				t.Fatalf("problem without a position in a.cue or b.cue: %q\nall:\n%v", line, err)
			}
		}
	})
}
