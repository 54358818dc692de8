//go:build unix

package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMakePrivate: an install from before owner-only modes is fixed by one
// full walk, recorded; later starts only look at the top level.
func TestMakePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	deep := filepath.Join(dir, "accounts", "alice@example.org", "maildir", "1", "cur")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	// Whatever the process umask (serve tests set 077): world-readable.
	for d := deep; d != filepath.Dir(dir); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := []string{
		filepath.Join(dir, "users.sqlite"),
		filepath.Join(dir, "accounts", "alice@example.org", "index.sqlite"),
		filepath.Join(deep, "1764000000.M1P1Q1Rab.host,S=3:2,"),
	}
	for _, f := range files {
		if err := os.WriteFile(f, []byte("abc"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	makePrivate(dir, log)
	checkTreePrivate(t, dir)
	if !strings.Contains(logs.String(), "changed=9") {
		t.Errorf("log: %s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, modesMarker)); err != nil {
		t.Fatalf("no marker: %v", err)
	}
	if fi, err := os.Stat("/etc/hostname"); err == nil && fi.Mode().Perm() == 0o600 {
		t.Errorf("followed the symbolic link")
	}

	// With the marker, only the top level is looked at.
	os.Chmod(deep, 0o755)
	os.Chmod(filepath.Join(dir, "users.sqlite"), 0o644)
	logs.Reset()
	makePrivate(dir, log)
	if fi, _ := os.Stat(filepath.Join(dir, "users.sqlite")); fi.Mode().Perm() != 0o600 {
		t.Errorf("top-level file not fixed: %o", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(deep); fi.Mode().Perm() != 0o755 {
		t.Errorf("second start walked the tree")
	}
	if !strings.Contains(logs.String(), "changed=1 full_walk=false") {
		t.Errorf("log: %s", logs.String())
	}
}

func checkTreePrivate(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		switch {
		case info.IsDir():
			want = 0o700
		case !info.Mode().IsRegular():
			return nil
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
		return nil
	})
}

// TestRemoveSpoolLeftovers: a spool file older than a minute was left by a
// crash (smtpd unlinks its files as soon as it creates them).
func TestRemoveSpoolLeftovers(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "smtpd-123.eml")
	fresh := filepath.Join(dir, "smtpd-456.eml")
	for _, f := range []string{old, fresh} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-time.Hour)
	os.Chtimes(old, past, past)
	var logs bytes.Buffer
	removeSpoolLeftovers(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("old spool file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh spool file removed: %v", err)
	}
	if !strings.Contains(logs.String(), "removed spool file left by a crash") || !strings.Contains(logs.String(), "smtpd-123.eml") {
		t.Errorf("log: %s", logs.String())
	}
}
