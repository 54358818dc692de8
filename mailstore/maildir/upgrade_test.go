package maildir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/indexrow"
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

// TestUpgradeCompactRows: an index of version 6 (an index on file names,
// envelopes and body structures in JSON) upgrades in place with a copy of
// its old self beside it; its JSON rows still read as before, new rows are
// binary, and reconciliation, which no longer has the file index, indexes a
// file dropped in once and leaves indexed files alone.
func TestUpgradeCompactRows(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	acc := openAccount(t, s, testAccount)
	deliver(t, acc, multipartMessage)
	in, _ := acc.Mailbox(ctx, "INBOX")
	want, err := acc.Fetch(ctx, in.ID, imap.UIDSetNum(1), mailstore.FetchOptions{Envelope: true, BodyStructure: true})
	if err != nil || len(want) != 1 {
		t.Fatalf("fetch: %v %v", want, err)
	}
	acc.Close()
	s.Close()

	// Make it a version 6 index as it was written then.
	idx := filepath.Join(dir, accountDirName(testAccount), indexFile)
	db, err := sqlitedb.OpenFile(idx, false)
	if err != nil {
		t.Fatal(err)
	}
	env, _ := json.Marshal(indexrow.ToCachedEnvelope(want[0].Envelope))
	part, _ := indexrow.ToCachedPart(want[0].BodyStructure, 0)
	bs, _ := json.Marshal(part)
	for _, q := range []string{
		`UPDATE messages SET envelope = ?, bodystructure = ?`,
		`CREATE INDEX messages_file ON messages (mailbox, file)`,
		`DROP TABLE pending`, // step 9
		`ALTER TABLE mailboxes DROP COLUMN cache_summaries`, // step 8
		`PRAGMA user_version = 6`,
	} {
		var args []any
		if strings.HasPrefix(q, "UPDATE") {
			args = []any{append([]byte{indexrow.CacheVersion}, env...), append([]byte{indexrow.CacheVersion}, bs...)}
		}
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err = Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	acc = openAccount(t, s, testAccount)
	if _, err := os.Stat(sqlitedb.UpgradeCopyPath(idx, len(migrations))); err != nil {
		t.Errorf("no copy from before the upgrade: %v", err)
	}
	got, err := acc.Fetch(ctx, in.ID, imap.UIDSetNum(1), mailstore.FetchOptions{Envelope: true, BodyStructure: true})
	if err != nil || len(got) != 1 {
		t.Fatalf("fetch after the upgrade: %v %v", got, err)
	}
	normalizeDates(got[0].BodyStructure)
	normalizeDates(want[0].BodyStructure)
	if !got[0].Envelope.Date.Equal(want[0].Envelope.Date) || got[0].Envelope.Subject != want[0].Envelope.Subject ||
		!reflect.DeepEqual(got[0].Envelope.From, want[0].Envelope.From) || !reflect.DeepEqual(got[0].BodyStructure, want[0].BodyStructure) {
		t.Errorf("JSON row after the upgrade:\n got %#v %#v\nwant %#v %#v", got[0].Envelope, got[0].BodyStructure, want[0].Envelope, want[0].BodyStructure)
	}
	deliver(t, acc, testMessage("after", "x"))

	check, err := sqlitedb.OpenFile(idx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	var n int
	if err := check.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'messages_file'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("messages_file: %d (%v), want dropped", n, err)
	}
	var first int
	if err := check.QueryRow(`SELECT unicode(CAST(substr(envelope, 1, 1) AS TEXT)) FROM messages WHERE uid = 2`).Scan(&first); err != nil || first != int(indexrow.BinaryVersion) {
		t.Errorf("new row's envelope starts with byte %d (%v), want the binary form", first, err)
	}

	// A file dropped into cur/ is indexed once; the indexed ones stay.
	cur := filepath.Join(dir, accountDirName(testAccount), maildirDir, strconv.FormatInt(in.ID, 10), "cur")
	if err := os.WriteFile(filepath.Join(cur, "1.dropped.host:2,S"), []byte(testMessage("dropped", "y")), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st, err := acc.Status(ctx, in.ID)
	if err != nil || st.UIDNext != 4 || st.Messages != 3 {
		t.Errorf("INBOX after reconciling twice: %+v (%v), want UIDNEXT 4 and 3 messages (one file indexed once)", st, err)
	}
}
