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
	"sync"
	"testing"
	"time"

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

func TestDefaultMailboxes(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	mbs, err := acc.ListMailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var names []string
	for _, mb := range mbs {
		got[mb.Name] = mb.SpecialUse
		names = append(names, mb.Name)
		if !mb.Subscribed || mb.UIDValidity == 0 || mb.ID == 0 {
			t.Errorf("mailbox %+v: want subscribed, with ID and UIDVALIDITY", mb)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("ListMailboxes not sorted: %v", names)
	}
	for _, d := range mailstore.DefaultMailboxes {
		if su, ok := got[d.Name]; !ok || su != d.SpecialUse {
			t.Errorf("mailbox %s: got %q present=%v, want special use %q", d.Name, su, ok, d.SpecialUse)
		}
	}
	// A second open does not duplicate them.
	acc.Close()
	acc = openAccount(t, s, testAccount)
	mbs2, _ := acc.ListMailboxes(context.Background())
	if len(mbs2) != len(mbs) {
		t.Errorf("reopen: %d mailboxes, want %d", len(mbs2), len(mbs))
	}
}

func TestDeliverFetchOpen(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	ctx := context.Background()
	msg := testMessage("hello there", "body line\r\nsecond line")
	res := deliver(t, acc, msg)
	if res.UID != 1 || res.Size != int64(len(msg)) || res.UIDValidity == 0 {
		t.Fatalf("Deliver = %+v", res)
	}
	in := inboxID(t, acc)
	if res.MailboxID != in {
		t.Fatalf("delivered to %d, INBOX is %d", res.MailboxID, in)
	}
	if got := readMessage(t, acc, in, 1); got != msg {
		t.Fatalf("stored bytes differ:\n%q\n%q", got, msg)
	}
	infos, err := acc.Fetch(ctx, in, imap.UIDSetNum(1, 2, 3), mailstore.FetchOptions{Envelope: true, BodyStructure: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 {
		t.Fatalf("Fetch: %d rows", len(infos))
	}
	mi := infos[0]
	if mi.Envelope == nil || mi.Envelope.Subject != "hello there" || mi.Envelope.MessageID != "hello-there@example.net" ||
		len(mi.Envelope.From) != 1 || mi.Envelope.From[0].Host != "example.net" {
		t.Errorf("envelope = %+v", mi.Envelope)
	}
	sp, ok := mi.BodyStructure.(*imap.BodyStructureSinglePart)
	if !ok || sp.MediaType() != "text/plain" || sp.Text == nil || sp.Text.NumLines != 2 {
		t.Errorf("body structure = %#v", mi.BodyStructure)
	}
	if mi.Size != int64(len(msg)) || time.Since(mi.InternalDate) > time.Minute {
		t.Errorf("size %d internal date %v", mi.Size, mi.InternalDate)
	}
	// Without options the caches are not decoded.
	infos, _ = acc.Fetch(ctx, in, imap.UIDSetNum(1), mailstore.FetchOptions{})
	if infos[0].Envelope != nil || infos[0].BodyStructure != nil {
		t.Errorf("Fetch without options returned caches")
	}
	if _, _, err := acc.OpenMessage(ctx, in, 9); !errors.Is(err, mailstore.ErrNoSuchMessage) {
		t.Errorf("OpenMessage(9) = %v, want ErrNoSuchMessage", err)
	}
	if _, err := acc.Fetch(ctx, 999, imap.UIDSetNum(1), mailstore.FetchOptions{}); !errors.Is(err, mailstore.ErrNoSuchMailbox) {
		t.Errorf("Fetch(999) = %v, want ErrNoSuchMailbox", err)
	}
	if used, limit, err := acc.Usage(ctx); err != nil || used != int64(len(msg)) || limit != 0 {
		t.Errorf("Usage = %d, %d, %v", used, limit, err)
	}
}

func TestDeliverOptions(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	ctx := context.Background()
	junk, _ := acc.Mailbox(ctx, "Junk")
	res, err := acc.Deliver(ctx, strings.NewReader(testMessage("spam", "x")), mailstore.DeliverOptions{Mailbox: "Junk", Flags: []imap.Flag{imap.FlagSeen, "$Junk"}})
	if err != nil || res.MailboxID != junk.ID {
		t.Fatalf("Deliver to Junk = %+v, %v", res, err)
	}
	infos, _ := acc.Fetch(ctx, junk.ID, imap.UIDSetNum(res.UID), mailstore.FetchOptions{})
	if !slices.Equal(infos[0].Flags, []imap.Flag{imap.FlagSeen, "$Junk"}) {
		t.Errorf("flags = %v", infos[0].Flags)
	}
	for _, mbox := range []string{"Nope", "../../etc", "a%b"} {
		res, err = acc.Deliver(ctx, strings.NewReader(testMessage("x", "x")), mailstore.DeliverOptions{Mailbox: mbox})
		if err != nil || res.MailboxID != inboxID(t, acc) {
			t.Errorf("Deliver to %q = %+v, %v; want fallback to INBOX", mbox, res, err)
		}
	}
	if _, err := acc.Append(ctx, "Nope", strings.NewReader("x"), mailstore.AppendOptions{}); !errors.Is(err, mailstore.ErrNoSuchMailbox) {
		t.Errorf("Append to missing mailbox = %v", err)
	}
	if _, err := acc.Append(ctx, "a/../b", strings.NewReader("x"), mailstore.AppendOptions{}); !errors.Is(err, mailstore.ErrBadMailboxName) {
		t.Errorf("Append to bad name = %v", err)
	}
	date := time.Date(2020, 5, 6, 7, 8, 9, 0, time.FixedZone("", -7*3600))
	res, err = acc.Append(ctx, "Sent", strings.NewReader(testMessage("sent", "x")), mailstore.AppendOptions{Flags: []imap.Flag{`\seen`, `\Recent`, "kw"}, InternalDate: date})
	if err != nil {
		t.Fatal(err)
	}
	infos, _ = acc.Fetch(ctx, res.MailboxID, imap.UIDSetNum(res.UID), mailstore.FetchOptions{})
	if !infos[0].InternalDate.Equal(date) {
		t.Errorf("internal date %v, want %v", infos[0].InternalDate, date)
	}
	if _, off := infos[0].InternalDate.Zone(); off != -7*3600 {
		t.Errorf("internal date zone offset %d", off)
	}
	if !slices.Equal(infos[0].Flags, []imap.Flag{imap.FlagSeen, "kw"}) {
		t.Errorf("flags = %v", infos[0].Flags)
	}
}

func TestSnapshotStoreExpungeWatch(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	ctx := context.Background()
	in := inboxID(t, acc)
	for i := 0; i < 5; i++ {
		deliver(t, acc, testMessage(fmt.Sprint("m", i), "x"))
	}
	var mu sync.Mutex
	var events []mailstore.Event
	other := openAccount(t, s, testAccount) // events reach every handle
	stop := other.Watch(func(e mailstore.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	defer stop()
	snap, err := acc.Snapshot(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(uids(snap), []imap.UID{1, 2, 3, 4, 5}) || snap.UIDNext != 6 || snap.Mailbox.Name != "INBOX" {
		t.Fatalf("snapshot = %+v", snap)
	}
	hms := snap.HighestModSeq

	res, err := acc.StoreFlags(ctx, in, imap.UIDSetNum(2, 3, 9), mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted, "Work"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Updated) != 2 || res.Updated[0].UID != 2 || res.Updated[0].ModSeq <= hms ||
		!slices.Equal(res.Updated[1].Flags, []imap.Flag{imap.FlagDeleted, "Work"}) {
		t.Fatalf("StoreFlags = %+v", res)
	}
	ms := res.Updated[0].ModSeq
	// CONDSTORE: 2 changed after hms, so it is refused; 1 is not.
	res, err = acc.StoreFlags(ctx, in, imap.UIDSetNum(1, 2), mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen}, hms)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Modified, []imap.UID{2}) || len(res.Updated) != 1 || res.Updated[0].UID != 1 {
		t.Fatalf("StoreFlags unchangedSince = %+v", res)
	}
	// A store that changes nothing keeps the modseq.
	res, _ = acc.StoreFlags(ctx, in, imap.UIDSetNum(1), mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen}, 0)
	if res.Updated[0].ModSeq != ms+1 {
		t.Errorf("no-op store modseq %d, want %d", res.Updated[0].ModSeq, ms+1)
	}
	res, _ = acc.StoreFlags(ctx, in, imap.UIDSetNum(3), mailstore.FlagsRemove, []imap.Flag{"work"}, 0)
	if !slices.Equal(res.Updated[0].Flags, []imap.Flag{imap.FlagDeleted}) {
		t.Errorf("remove keyword case-insensitively: %v", res.Updated[0].Flags)
	}
	res, _ = acc.StoreFlags(ctx, in, imap.UIDSet{{Start: 4, Stop: 0}}, mailstore.FlagsSet, []imap.Flag{imap.FlagFlagged}, 0)
	if len(res.Updated) != 2 || res.Updated[1].UID != 5 {
		t.Errorf("4:* store = %+v", res)
	}
	st, err := acc.Status(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 5 || st.Deleted != 2 || st.Unseen != 4 || st.UIDNext != 6 || st.HighestModSeq <= ms {
		t.Errorf("status = %+v", st)
	}

	// UID EXPUNGE of 3 only, then the rest.
	only := imap.UIDSetNum(3)
	gone, err := acc.Expunge(ctx, in, &only)
	if err != nil || !slices.Equal(gone, []imap.UID{3}) {
		t.Fatalf("Expunge(3) = %v, %v", gone, err)
	}
	gone, err = acc.Expunge(ctx, in, nil)
	if err != nil || !slices.Equal(gone, []imap.UID{2}) {
		t.Fatalf("Expunge = %v, %v", gone, err)
	}
	if _, _, err := acc.OpenMessage(ctx, in, 2); !errors.Is(err, mailstore.ErrNoSuchMessage) {
		t.Errorf("expunged message opens: %v", err)
	}
	snap2, _ := acc.Snapshot(ctx, in)
	if !slices.Equal(uids(snap2), []imap.UID{1, 4, 5}) {
		t.Errorf("after expunge: %v", uids(snap2))
	}
	deliver(t, acc, testMessage("new", "x"))

	mu.Lock()
	defer mu.Unlock()
	var kinds []string
	last := hms
	for _, e := range events {
		if e.ModSeq < last {
			t.Errorf("event modseq went back: %+v after %d", e, last)
		}
		last = e.ModSeq
		kinds = append(kinds, fmt.Sprintf("%d:%d", e.Kind, e.UID))
	}
	want := []string{"2:2", "2:3", "2:1", "2:3", "2:4", "2:5", "3:3", "3:2", "1:6"}
	if !slices.Equal(kinds, want) {
		t.Errorf("events = %v, want %v", kinds, want)
	}
	if events[len(events)-1].ModSeq != snap2.HighestModSeq+1 {
		t.Errorf("append event modseq %d, snapshot had %d", events[len(events)-1].ModSeq, snap2.HighestModSeq)
	}
	checkCounters(t, acc)
}

// TestMigrationCounters opens an index written by schema version 1 and
// checks that migration 2 computes the counters from existing messages.
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
	if st.Messages != 2 || st.Size != 150 || st.Unseen != 1 || st.Deleted != 1 || st.UIDValidity != 7 {
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
	if !strings.HasSuffix(name, fmt.Sprintf(",S=%d:2,", res.Size)) {
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

// TestMissingMailboxID checks every method that takes a mailbox ID against
// an ID that does not exist (a mailbox deleted under a selected session).
func TestMissingMailboxID(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	ctx := context.Background()
	const gone = 4242
	all := imap.UIDSet{{Start: 1, Stop: 0}}
	tests := []struct {
		name string
		op   func() error
	}{
		{"Status", func() error { _, err := acc.Status(ctx, gone); return err }},
		{"Snapshot", func() error { _, err := acc.Snapshot(ctx, gone); return err }},
		{"Fetch", func() error { _, err := acc.Fetch(ctx, gone, all, mailstore.FetchOptions{}); return err }},
		{"OpenMessage", func() error { _, _, err := acc.OpenMessage(ctx, gone, 1); return err }},
		{"Search", func() error { _, err := acc.Search(ctx, gone, &imap.SearchCriteria{}); return err }},
		{"StoreFlags", func() error {
			_, err := acc.StoreFlags(ctx, gone, all, mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen}, 0)
			return err
		}},
		{"Expunge", func() error { _, err := acc.Expunge(ctx, gone, nil); return err }},
		{"Copy", func() error { _, err := acc.Copy(ctx, gone, all, "Trash"); return err }},
		{"Move", func() error { _, err := acc.Move(ctx, gone, all, "Trash"); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, mailstore.ErrNoSuchMailbox) {
				t.Fatalf("got %v, want ErrNoSuchMailbox", err)
			}
		})
	}
	if acc.Name() != testAccount {
		t.Errorf("Name() = %q", acc.Name())
	}
	if err := acc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := acc.Close(); !errors.Is(err, mailstore.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	stop := acc.Watch(func(mailstore.Event) {})
	stop() // a no-op on a closed handle, but callable
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
			for _, r := range got {
				if !uidIn(got, r.lo) || !uidIn(got, r.hi) || (r.lo > 1 && uidIn(got, r.lo-1) && !slices.ContainsFunc(got, func(x uidRange) bool { return x.hi == r.lo-1 })) {
					t.Fatalf("uidIn disagrees with %v", got)
				}
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
