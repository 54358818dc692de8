// Package forkcheck keeps a patched copy of a module in third_party/ in step
// with its patch series, for tests: the copy must be the pristine upstream
// release (from the module cache) with every patch in patches/ applied in
// order, byte for byte, apart from POSTHOUSE-README.md and patches/; each
// patch names its reason and its test, and the README lists every patch.
// It also runs go vet and the copy's own tests, which `go test ./...` does
// not reach (the copy is another module). Only tests import it.
package forkcheck

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Fork is a patched copy of a module. Its patches/UPSTREAM names the
// module, the upstream release the series applies to and the upstream
// top-level directories left out of the copy (third_party/series.sh reads
// it too).
type Fork struct {
	Dir   string // the copy, e.g. ../third_party/go-imap
	GoMod string // the go.mod that requires the module, e.g. ../go.mod
}

// upstreamInfo is patches/UPSTREAM.
type upstreamInfo struct {
	module, version string
	omit            []string
}

func (f Fork) info(t *testing.T) upstreamInfo {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.Dir, "patches", "UPSTREAM"))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b))
	if len(fields) < 2 {
		t.Fatalf("%s/patches/UPSTREAM: want the module, its version and the directories left out", f.Dir)
	}
	return upstreamInfo{module: fields[0], version: fields[1], omit: fields[2:]}
}

// Module is the module path the copy replaces.
func (f Fork) Module(t *testing.T) string { return f.info(t).module }

// CheckSeries applies every patch in order to the pristine upstream module
// and requires the result to be the copy's tree.
func CheckSeries(t *testing.T, f Fork) {
	t.Helper()
	u := f.info(t)
	f.checkGoModRequires(t, u)
	upstreamDir := f.upstream(t, u)

	tree := map[string][]byte{}
	err := filepath.WalkDir(upstreamDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(mustRel(t, upstreamDir, p))
		if d.IsDir() {
			for _, o := range u.omit {
				if rel == o {
					return filepath.SkipDir
				}
			}
			return nil
		}
		b, err := os.ReadFile(p)
		tree[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	patches, err := filepath.Glob(filepath.Join(f.Dir, "patches", "*.patch"))
	if err != nil {
		t.Fatal(err)
	}
	if len(patches) == 0 {
		t.Fatalf("no patches in %s/patches", f.Dir)
	}
	sort.Strings(patches)
	readme, err := os.ReadFile(filepath.Join(f.Dir, "POSTHOUSE-README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range patches {
		name := filepath.Base(p)
		if want := fmt.Sprintf("%04d-", i+1); !strings.HasPrefix(name, want) {
			t.Errorf("%s: want the name to start with %s (one number per patch, in order)", name, want)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkPatchHeader(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !bytes.Contains(readme, []byte(name)) {
			t.Errorf("POSTHOUSE-README.md does not list %s", name)
		}
		if err := applyPatch(tree, b); err != nil {
			t.Fatalf("%s does not apply to upstream %s plus the patches before it: %v", name, u.version, err)
		}
	}

	fork := map[string][]byte{}
	err = filepath.WalkDir(f.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(mustRel(t, f.Dir, p))
		switch {
		case d.IsDir() && rel == "patches":
			return filepath.SkipDir
		case d.IsDir() || rel == "POSTHOUSE-README.md":
			return nil
		}
		b, err := os.ReadFile(p)
		fork[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var diffs []string
	for name, b := range fork {
		switch want, ok := tree[name]; {
		case !ok:
			diffs = append(diffs, name+": in the fork, not made by the series")
		case !bytes.Equal(b, want):
			diffs = append(diffs, name+": differs from what the series makes")
		}
	}
	for name := range tree {
		if _, ok := fork[name]; !ok {
			diffs = append(diffs, name+": made by the series, missing from the fork")
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		t.Errorf("%s is not upstream %s plus patches/ (regenerate the series as POSTHOUSE-README.md says):\n%s",
			f.Dir, u.version, strings.Join(diffs, "\n"))
	}
}

// VetAndTest runs go vet on the copy's packages vet (import paths) and go
// test on all of them. It is skipped with -short.
func VetAndTest(t *testing.T, f Fork, vet ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs go vet and go test on " + f.Dir + "; skipped with -short")
	}
	for _, args := range [][]string{
		append([]string{"vet"}, vet...),
		{"test", "-count=1", f.Module(t) + "/..."},
	} {
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			t.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// checkGoModRequires fails when go.mod requires another release than the
// one the series is for.
func (f Fork) checkGoModRequires(t *testing.T, u upstreamInfo) {
	t.Helper()
	b, err := os.ReadFile(f.GoMod)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(u.module) + `\s+(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s does not require %s", f.GoMod, u.module)
	}
	if v := string(m[1]); v != u.version {
		t.Fatalf("%s requires %s %s; the patch series is for %s", f.GoMod, u.module, v, u.version)
	}
}

// upstream returns the pristine module's directory in the module cache,
// and skips the test when it is not there.
func (f Fork) upstream(t *testing.T, u upstreamInfo) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), filepath.FromSlash(u.module)+"@"+u.version)
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Skipf("upstream %s@%s is not in the module cache (%v), so the patch series cannot be checked; "+
			"get it with: go mod download %s@%s", u.module, u.version, err, u.module, u.version)
	}
	return dir
}

func mustRel(t *testing.T, base, p string) string {
	t.Helper()
	rel, err := filepath.Rel(base, p)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// checkPatchHeader requires a subject, a reason ("Why:") and a test ("Test:")
// before the diff.
func checkPatchHeader(b []byte) error {
	head, _, ok := bytes.Cut(b, []byte("\ndiff --git "))
	if !ok {
		return errors.New("no diff")
	}
	for _, want := range []string{"\nSubject: ", "\nWhy: ", "\nTest: "} {
		if !bytes.Contains(head, []byte(want)) {
			return fmt.Errorf("the header has no %q line", strings.TrimSpace(want))
		}
	}
	return nil
}

var hunkHeader = regexp.MustCompile(`^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@`)

// applyPatch applies a git format-patch file to tree (path -> content)
// strictly: every hunk must match at exactly the line it names, with no
// fuzz, so the series reproduces the tree only if it was made from it.
func applyPatch(tree map[string][]byte, patch []byte) error {
	lines := strings.SplitAfter(string(patch), "\n")
	i := 0
	for i < len(lines) && !strings.HasPrefix(lines[i], "diff --git ") {
		i++ // mail header, message, diffstat
	}
	for i < len(lines) && lines[i] != "" && lines[i] != "-- \n" { // "-- ": a signature
		if !strings.HasPrefix(lines[i], "diff --git ") {
			return fmt.Errorf("line %d: expected diff --git, got %q", i+1, lines[i])
		}
		i++
		var oldName, newName string
		for ; i < len(lines) && !strings.HasPrefix(lines[i], "@@") && !strings.HasPrefix(lines[i], "diff --git "); i++ {
			l := strings.TrimSuffix(lines[i], "\n")
			switch {
			case strings.HasPrefix(l, "--- "):
				oldName = diffName(l[4:], "a/")
			case strings.HasPrefix(l, "+++ "):
				newName = diffName(l[4:], "b/")
			case strings.HasPrefix(l, "index "), strings.HasPrefix(l, "new file mode "),
				strings.HasPrefix(l, "deleted file mode "):
			default:
				return fmt.Errorf("line %d: unsupported patch line %q", i+1, l)
			}
		}
		if oldName == "" && newName == "" {
			return fmt.Errorf("line %d: diff without file names", i+1)
		}
		var old []string
		if oldName != "" {
			content, ok := tree[oldName]
			if !ok {
				return fmt.Errorf("%s: no such file", oldName)
			}
			old = strings.SplitAfter(string(content), "\n")
			if old[len(old)-1] == "" {
				old = old[:len(old)-1]
			}
		} else if _, ok := tree[newName]; ok {
			return fmt.Errorf("%s: created, but exists", newName)
		}
		var out []string
		pos := 0 // next line of old to copy
		for i < len(lines) && strings.HasPrefix(lines[i], "@@") {
			m := hunkHeader.FindStringSubmatch(lines[i])
			if m == nil {
				return fmt.Errorf("line %d: bad hunk header %q", i+1, lines[i])
			}
			oldStart, oldLen := atoiDefault(m[1], 0), atoiDefault(m[2], 1)
			newStart, newLen := atoiDefault(m[3], 0), atoiDefault(m[4], 1)
			start := oldStart - 1
			if oldLen == 0 {
				start = oldStart
			}
			if start < pos || start > len(old) {
				return fmt.Errorf("line %d: hunk out of order or beyond the file", i+1)
			}
			out = append(out, old[pos:start]...)
			if wantStart := len(out) + 1; newLen == 0 && newStart != len(out) || newLen > 0 && newStart != wantStart {
				return fmt.Errorf("line %d: hunk header %q does not match the lines before it", i+1, strings.TrimSpace(lines[i]))
			}
			pos = start
			i++
			var nOld, nNew int
			for nOld < oldLen || nNew < newLen {
				if i >= len(lines) || lines[i] == "" {
					return fmt.Errorf("hunk cut short")
				}
				l := lines[i]
				switch l[0] {
				case ' ', '-':
					if pos >= len(old) || old[pos] != l[1:] {
						return fmt.Errorf("line %d: %s line %d does not match %q", i+1, oldName, pos+1, l)
					}
					if l[0] == ' ' {
						out = append(out, l[1:])
						nNew++
					}
					pos++
					nOld++
				case '+':
					out = append(out, l[1:])
					nNew++
				default:
					return fmt.Errorf("line %d: unsupported hunk line %q", i+1, l)
				}
				i++
			}
			if i < len(lines) && strings.HasPrefix(lines[i], `\`) {
				return fmt.Errorf("line %d: files without a final newline are not supported", i+1)
			}
		}
		out = append(out, old[pos:]...)
		if oldName != "" {
			delete(tree, oldName)
		}
		if newName != "" {
			tree[newName] = []byte(strings.Join(out, ""))
		} else if len(out) > 0 {
			return fmt.Errorf("%s: deleted, but lines remain", oldName)
		}
	}
	return nil
}

// diffName returns the path of a ---/+++ line, "" for /dev/null.
func diffName(s, prefix string) string {
	s, _, _ = strings.Cut(s, "\t")
	if s == "/dev/null" {
		return ""
	}
	return path.Clean(strings.TrimPrefix(s, prefix))
}

func atoiDefault(s string, def int) int {
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}
