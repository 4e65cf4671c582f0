// Package golden is the one harness of the repository's golden files: txtar
// archives under testdata/ that hold a case's input and its expected
// output in named sections. FERRY_UPDATE_GOLDEN=1 is the one switch that
// rewrites every golden's expected sections from what the code gives;
// goldens are never edited by hand.
package golden

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

// Update reports whether this run rewrites goldens (FERRY_UPDATE_GOLDEN=1).
func Update() bool { return os.Getenv("FERRY_UPDATE_GOLDEN") == "1" }

// Archive is one golden file.
type Archive struct {
	Path string // the .txtar file
	Name string // its base name without .txtar
	*txtar.Archive
}

// Load parses the archives that pattern (a glob) matches, failing the test
// when there are fewer than min.
func Load(t testing.TB, pattern string, min int) []*Archive {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < min {
		t.Fatalf("%s: %d goldens, want at least %d", pattern, len(files), min)
	}
	out := make([]*Archive, 0, len(files))
	for _, f := range files {
		a, err := txtar.ParseFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &Archive{Path: f, Name: strings.TrimSuffix(filepath.Base(f), ".txtar"), Archive: a})
	}
	return out
}

// Section returns the named section's data and whether there is one.
func (a *Archive) Section(name string) ([]byte, bool) {
	for _, f := range a.Files {
		if f.Name == name {
			return f.Data, true
		}
	}
	return nil, false
}

// Check compares got with the named section. With FERRY_UPDATE_GOLDEN=1 it
// writes got into the section instead (adding it if missing) and saves the
// archive.
func (a *Archive) Check(t testing.TB, name string, got []byte) {
	t.Helper()
	if Update() {
		a.set(name, got)
		if err := os.WriteFile(a.Path, txtar.Format(a.Archive), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want, _ := a.Section(name); !bytes.Equal(got, want) {
		t.Errorf("%s: section %s differs (FERRY_UPDATE_GOLDEN=1 rewrites it)\n--- got\n%s--- want\n%s", a.Path, name, got, want)
	}
}

func (a *Archive) set(name string, data []byte) {
	for i := range a.Files {
		if a.Files[i].Name == name {
			a.Files[i].Data = data
			return
		}
	}
	a.Files = append(a.Files, txtar.File{Name: name, Data: data})
}

// CheckFile compares got with a whole golden file, which
// FERRY_UPDATE_GOLDEN=1 writes instead (a golden the code generates
// entirely: the CDC type goldens, the provider's docs).
func CheckFile(t testing.TB, path string, got []byte) {
	t.Helper()
	if Update() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (FERRY_UPDATE_GOLDEN=1 writes it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs (FERRY_UPDATE_GOLDEN=1 rewrites it)\n--- got\n%s--- want\n%s", path, got, want)
	}
}
