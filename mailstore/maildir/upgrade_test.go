package maildir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// TestFailedUpgradeKeepsIndex: an index whose schema upgrade fails is
// neither rebuilt nor moved aside (a rebuild would give every mailbox a new
// UIDVALIDITY): opening the account fails with the upgrade's error, and
// the index opens as before once the cause is gone.
func TestFailedUpgradeKeepsIndex(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	acc, _ := s.Open(ctx, testAccount)
	deliver(t, acc, testMessage("kept", "x"))
	before, _ := acc.Mailbox(ctx, "INBOX")
	acc.Close()
	s.Close()

	// One version less than it has: the last step runs again and fails.
	idx := filepath.Join(dir, accountDirName(testAccount), indexFile)
	setVersion := func(v int) {
		db, err := sqlitedb.OpenFile(idx, false)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
			t.Fatal(err)
		}
	}
	setVersion(len(migrations) - 1)

	s, err = Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Open(ctx, testAccount)
	s.Close()
	if _, ok := errors.AsType[*sqlitedb.MigrationError](err); !ok {
		t.Fatalf("open after a failed upgrade: %v, want a *sqlitedb.MigrationError", err)
	}
	if m, _ := filepath.Glob(idx + ".corrupt-*"); len(m) != 0 {
		t.Fatalf("index moved aside: %v", m)
	}
	if _, err := os.Stat(sqlitedb.UpgradeCopyPath(idx, len(migrations))); err != nil {
		t.Fatalf("no copy from before the upgrade: %v", err)
	}

	setVersion(len(migrations))
	s, err = Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	acc = openAccount(t, s, testAccount)
	after, err := acc.Mailbox(ctx, "INBOX")
	if err != nil || after.UIDValidity != before.UIDValidity {
		t.Fatalf("INBOX %+v (%v), before %+v", after, err, before)
	}
}
