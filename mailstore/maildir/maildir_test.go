package maildir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

const testAccount = "alice@example.org"

func newTestStore(t *testing.T, opts Options) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// newTestAccount opens testAccount in a new store, and its account behind
// the handle.
func newTestAccount(t *testing.T) (mailstore.Account, *account) {
	t.Helper()
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	return acc, acc.(*handle).a
}

func openAccount(t *testing.T, s *Store, name string) mailstore.Account {
	t.Helper()
	acc, err := s.Open(context.Background(), name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	t.Cleanup(func() { acc.Close() })
	return acc
}

func testMessage(subject, body string) string {
	return "From: Bob <bob@example.net>\r\nTo: alice@example.org\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@example.net>\r\nDate: Sat, 21 Nov 2026 10:00:00 +0100\r\n\r\n" + body + "\r\n"
}

func deliver(t *testing.T, acc mailstore.Account, msg string) mailstore.AppendResult {
	t.Helper()
	res, err := acc.Deliver(context.Background(), strings.NewReader(msg), mailstore.DeliverOptions{})
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	return res
}

func inboxID(t *testing.T, acc mailstore.Account) int64 {
	t.Helper()
	mb, err := acc.Mailbox(context.Background(), "inbox")
	if err != nil {
		t.Fatal(err)
	}
	return mb.ID
}

func readMessage(t *testing.T, acc mailstore.Account, mbox int64, uid imap.UID) string {
	t.Helper()
	rc, size, err := acc.OpenMessage(context.Background(), mbox, uid)
	if err != nil {
		t.Fatalf("OpenMessage(%d): %v", uid, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != size {
		t.Fatalf("OpenMessage size %d, read %d bytes", size, len(b))
	}
	return string(b)
}

func uids(snap mailstore.Snapshot) []imap.UID {
	var out []imap.UID
	for _, m := range snap.Messages {
		out = append(out, m.UID)
	}
	return out
}

// TestMigrationCounters opens an index written by schema version 1 and
// checks that migration 2 computes the counters from existing messages, and
// that migration 4 leaves none of them \Recent (claimed up to UIDNEXT).
func TestMigrationCounters(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	acctDir := filepath.Join(dir, accountDirName(testAccount))
	os.MkdirAll(filepath.Join(acctDir, "maildir"), 0o700)
	os.WriteFile(filepath.Join(acctDir, addressFile), []byte(testAccount+"\n"), 0o600)
	db, err := sqlitedb.Open(ctx, filepath.Join(acctDir, indexFile), migrations[:1], sqlitedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO mailboxes (id, name, uidvalidity, uidnext) VALUES (1, 'INBOX', 7, 3)`,
		`INSERT INTO messages (mailbox, uid, modseq, flags, size, internaldate, internalzone, file) VALUES (1, 1, 1, 1, 100, 0, 0, 'cur/a')`,
		`INSERT INTO messages (mailbox, uid, modseq, flags, size, internaldate, internalzone, file) VALUES (1, 2, 1, 8, 50, 0, 0, 'cur/b')`,
	} {
		if _, err := db.Write.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	for _, f := range []string{"a", "b"} {
		os.MkdirAll(filepath.Join(acctDir, "maildir", "1", "cur"), 0o700)
		os.WriteFile(filepath.Join(acctDir, "maildir", "1", "cur", f), []byte("Subject: x\r\n\r\n"), 0o600)
	}
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	acc := openAccount(t, s, testAccount)
	st, err := acc.Status(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 2 || st.Size != 150 || st.Unseen != 1 || st.Deleted != 1 || st.UIDValidity != 7 ||
		st.Recent != 0 || st.RecentUID != 3 {
		t.Errorf("status after migration = %+v", st)
	}
}

func TestStoreFilesOnDisk(t *testing.T) {
	s, dir := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	res := deliver(t, acc, testMessage("disk", "x"))
	cur := filepath.Join(dir, accountDirName(testAccount), "maildir", fmt.Sprint(res.MailboxID), "cur")
	ents, err := os.ReadDir(cur)
	if err != nil || len(ents) != 1 {
		t.Fatalf("cur/ = %v, %v", ents, err)
	}
	name := ents[0].Name()
	// Small: journaled (journal.go), so marked ",J".
	if !strings.HasSuffix(name, fmt.Sprintf(",S=%d,J:2,", res.Size)) {
		t.Errorf("file name %q", name)
	}
	b, _ := os.ReadFile(filepath.Join(cur, name))
	if !bytes.Equal(b, []byte(testMessage("disk", "x"))) {
		t.Errorf("file content differs")
	}
	tmp, _ := os.ReadDir(filepath.Join(filepath.Dir(cur), "tmp"))
	if len(tmp) != 0 {
		t.Errorf("tmp/ not empty: %v", tmp)
	}
}

func TestResolveUIDs(t *testing.T) {
	tests := []struct {
		name string
		set  imap.UIDSet
		max  imap.UID
		want []uidRange
	}{
		{name: "single", set: imap.UIDSetNum(5), max: 9, want: []uidRange{{5, 5}}},
		{name: "merge adjacent and overlapping", set: imap.UIDSet{{Start: 1, Stop: 3}, {Start: 4, Stop: 4}, {Start: 2, Stop: 6}, {Start: 9, Stop: 10}}, max: 20, want: []uidRange{{1, 6}, {9, 10}}},
		{name: "star", set: imap.UIDSet{{Start: 0, Stop: 0}}, max: 7, want: []uidRange{{7, 7}}},
		{name: "n:star", set: imap.UIDSet{{Start: 3, Stop: 0}}, max: 7, want: []uidRange{{3, 7}}},
		{name: "n:star above max includes max", set: imap.UIDSet{{Start: 12, Stop: 0}}, max: 7, want: []uidRange{{7, 12}}},
		{name: "reversed", set: imap.UIDSet{{Start: 9, Stop: 4}}, max: 20, want: []uidRange{{4, 9}}},
		{name: "star on empty mailbox", set: imap.UIDSet{{Start: 0, Stop: 0}}, max: 0, want: nil},
		{name: "max uid no overflow", set: imap.UIDSet{{Start: 1, Stop: ^imap.UID(0)}, {Start: 5, Stop: 6}}, max: 3, want: []uidRange{{1, ^imap.UID(0)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := resolveUIDs(tc.set, tc.max)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestFailedCommitRemovesFile makes the index refuse a message whose file
// is already in cur/ (the account filled up meanwhile): the file must go.
func TestFailedCommitRemovesFile(t *testing.T) {
	s, dir := newTestStore(t, Options{Quota: func(context.Context, string) (int64, error) { return 10000, nil }})
	acc := openAccount(t, s, testAccount)
	ctx := context.Background()
	in := inboxID(t, acc)
	testHookBeforeCommit = func(a *account) { a.used.Add(9000) } // someone else's delivery
	t.Cleanup(func() { testHookBeforeCommit = nil })
	_, err := acc.Deliver(ctx, strings.NewReader(testMessage("too late", strings.Repeat("x", 2000))), mailstore.DeliverOptions{})
	testHookBeforeCommit = nil
	if !errors.Is(err, mailstore.ErrOverQuota) {
		t.Fatalf("Deliver = %v, want ErrOverQuota at commit", err)
	}
	acc.(*handle).a.used.Add(-9000)
	for _, sub := range []string{"cur", "new", "tmp"} {
		ents, _ := os.ReadDir(filepath.Join(dir, accountDirName(testAccount), "maildir", fmt.Sprint(in), sub))
		if len(ents) != 0 {
			t.Errorf("%s/ keeps %d files after a failed commit", sub, len(ents))
		}
	}
	if snap, _ := acc.Snapshot(ctx, in); len(snap.Messages) != 0 {
		t.Errorf("message visible after a failed commit")
	}
	deliver(t, acc, testMessage("fits", "x")) // and the account still works
}
