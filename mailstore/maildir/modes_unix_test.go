//go:build unix

package maildir

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// TestFileModes: whatever the umask, everything the store creates is
// private: files 0600, directories 0700, the index's -wal and -shm too.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	ctx := context.Background()
	s, dir := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	in := inboxID(t, acc)
	deliver(t, acc, testMessage("one", "x"))
	if _, err := acc.Append(ctx, "INBOX", strings.NewReader(testMessage("two", "y")), mailstore.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := acc.CreateMailbox(ctx, "Projects/2026", ""); err != nil {
		t.Fatal(err)
	}
	if err := acc.RenameMailbox(ctx, "Projects/2026", "Projects/Done"); err != nil {
		t.Fatal(err)
	}
	if _, err := acc.Copy(ctx, in, imap.UIDSetNum(1, 2), "Projects/Done"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir)
}

// checkPrivate walks dir: every directory must be 0700, every file 0600.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	var files, dirs int
	var wal bool
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want, dirs = 0o700, dirs+1
		} else {
			files++
			wal = wal || strings.HasSuffix(p, "-wal")
		}
		if p == dir {
			return nil // t.TempDir's own mode
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", strings.TrimPrefix(p, dir), got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 6 || dirs < 8 || !wal {
		t.Errorf("walked only %d files and %d directories (-wal seen: %v)", files, dirs, wal)
	}
}
