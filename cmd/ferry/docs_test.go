package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// docFiles are the user documentation: README.md and docs/.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join("..", "..", "README.md")}
	err := filepath.WalkDir(filepath.Join("..", "..", "docs"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return err
	})
	if err != nil || len(files) < 10 {
		t.Fatalf("docs: %d files, %v", len(files), err)
	}
	return files
}

var (
	linkRE    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingRE = regexp.MustCompile("(?m)^#{1,6} (.+)$")
	// A ferry command line in code: in a fenced block, or an inline code
	// span, starting with "ferry ".
	inlineRE = regexp.MustCompile("`(ferry [^`]+)`")
)

// anchor is the anchor GitHub gives a heading.
func anchor(heading string) string {
	h := strings.ToLower(strings.TrimSpace(heading))
	h = regexp.MustCompile(`[^\p{L}\p{N}\- _]`).ReplaceAllString(h, "")
	return strings.ReplaceAll(h, " ", "-")
}

// TestDocLinks: every relative link of the documentation names a file
// that exists and, with a #fragment, a heading of it.
func TestDocLinks(t *testing.T) {
	anchors := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		a := map[string]bool{}
		if b, err := os.ReadFile(path); err == nil {
			for _, m := range headingRE.FindAllStringSubmatch(withoutFences(string(b)), -1) {
				a[anchor(m[1])] = true
			}
		}
		anchors[path] = a
		return a
	}
	for _, file := range docFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range linkRE.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, frag, _ := strings.Cut(target, "#")
			full := file
			if path != "" {
				full = filepath.Join(filepath.Dir(file), path)
				if _, err := os.Stat(full); err != nil {
					t.Errorf("%s: link %s: no file %s", file, target, full)
					continue
				}
			}
			if frag != "" && !anchorsOf(full)[frag] {
				t.Errorf("%s: link %s: %s has no heading #%s", file, target, full, frag)
			}
		}
	}
}

// TestDocCommands: every ferry command the documentation shows exists,
// with the flags it uses.
func TestDocCommands(t *testing.T) {
	root := newRoot()
	checked := 0
	for _, file := range docFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range commandLines(string(b)) {
			if msg := checkCommand(root, line); msg != "" {
				t.Errorf("%s: %q: %s", file, line, msg)
			}
			checked++
		}
	}
	if checked < 30 {
		t.Fatalf("only %d ferry command lines found in the docs", checked)
	}
}

// commandLines finds the ferry command lines of a markdown text: lines of
// fenced blocks and inline code spans that start with "ferry ".
func commandLines(text string) []string {
	var out []string
	eachLine(text, func(line string, fenced bool) {
		if fenced {
			l := strings.TrimPrefix(strings.TrimSpace(line), "$ ")
			if strings.HasPrefix(l, "ferry ") {
				out = append(out, l)
			}
			return
		}
		for _, m := range inlineRE.FindAllStringSubmatch(line, -1) {
			out = append(out, m[1])
		}
	})
	return out
}

// eachLine calls fn for each line of a markdown text but the fences, with
// whether the line is inside a fenced block.
func eachLine(text string, fn func(line string, fenced bool)) {
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		fn(line, fenced)
	}
}

// checkCommand says what is wrong with a command line ("" for nothing):
// a subcommand that does not exist, or a flag the command lacks.
func checkCommand(root *cobra.Command, line string) string {
	line, _, _ = strings.Cut(line, "#") // a shell comment
	words := strings.Fields(strings.NewReplacer("|", " ", "[", " ", "]", " ").Replace(line))[1:]
	cmd := root
	for len(words) > 0 && !strings.HasPrefix(words[0], "-") {
		sub := findSub(cmd, words[0])
		if sub == nil {
			break
		}
		cmd, words = sub, words[1:]
	}
	if cmd == root {
		return "no such command"
	}
	for _, w := range words {
		if !strings.HasPrefix(w, "--") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(w, "--"), "=")
		name = strings.TrimRight(name, ",.;:)`'\"")
		if name != "" && cmd.Flags().Lookup(name) == nil && cmd.PersistentFlags().Lookup(name) == nil && cmd.InheritedFlags().Lookup(name) == nil && name != "help" {
			return "ferry " + cmd.Name() + " has no flag --" + name
		}
	}
	return ""
}

func findSub(cmd *cobra.Command, name string) *cobra.Command {
	for _, c := range cmd.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return c
		}
	}
	return nil
}

// withoutFences drops fenced code blocks, whose lines are not headings.
func withoutFences(text string) string {
	var out []string
	eachLine(text, func(line string, fenced bool) {
		if !fenced {
			out = append(out, line)
		}
	})
	return strings.Join(out, "\n")
}
