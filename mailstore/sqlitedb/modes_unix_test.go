//go:build unix

package sqlitedb

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestOpenFileModes: a new database and its -wal/-shm are 0600 whatever the
// umask, and an existing world-readable one is tightened at open.
func TestOpenFileModes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	migs := []Migration{Exec(`CREATE TABLE a (id INTEGER PRIMARY KEY)`)}

	path := filepath.Join(dir, "new.sqlite")
	db, err := Open(ctx, path, migs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Write.ExecContext(ctx, `INSERT INTO a DEFAULT VALUES`); err != nil {
		t.Fatal(err)
	}
	checkModes(t, path)
	db.Close()

	// An install from before: the files exist world-readable.
	for _, suf := range []string{"", "-wal", "-shm"} {
		if _, err := os.Stat(path + suf); err == nil {
			if err := os.Chmod(path+suf, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	db, err = Open(ctx, path, migs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkModes(t, path)
}

func checkModes(t *testing.T, path string) {
	t.Helper()
	n := 0
	for _, suf := range []string{"", "-wal", "-shm"} {
		fi, err := os.Stat(path + suf)
		if err != nil {
			continue
		}
		n++
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(path+suf), m)
		}
	}
	if n < 2 {
		t.Errorf("only %d of the database's files exist", n)
	}
}
