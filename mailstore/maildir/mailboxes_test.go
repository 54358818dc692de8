package maildir

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

func mailboxNames(t *testing.T, acc mailstore.Account) []string {
	t.Helper()
	mbs, err := acc.ListMailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mb := range mbs {
		out = append(out, mb.Name)
	}
	return out
}

func TestCreateDeleteMailbox(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	ctx := context.Background()
	tests := []struct {
		name    string
		op      func() error
		wantErr error
	}{
		{name: "create with parents", op: func() error { _, err := acc.CreateMailbox(ctx, "a/b/c", ""); return err }},
		{name: "create existing", op: func() error { _, err := acc.CreateMailbox(ctx, "a/b", ""); return err }, wantErr: mailstore.ErrMailboxExists},
		{name: "create inbox any case", op: func() error { _, err := acc.CreateMailbox(ctx, "iNbOx", ""); return err }, wantErr: mailstore.ErrMailboxExists},
		{name: "create bad name", op: func() error { _, err := acc.CreateMailbox(ctx, "../x", ""); return err }, wantErr: mailstore.ErrBadMailboxName},
		{name: "create bad special use", op: func() error { _, err := acc.CreateMailbox(ctx, "x", `\Bogus`); return err }, wantErr: mailstore.ErrNotAllowed},
		{name: "create with special use", op: func() error { _, err := acc.CreateMailbox(ctx, "Old Sent", mailstore.SpecialSent); return err }},
		{name: "delete with children", op: func() error { return acc.DeleteMailbox(ctx, "a/b") }, wantErr: mailstore.ErrHasChildren},
		{name: "delete inbox", op: func() error { return acc.DeleteMailbox(ctx, "inbox") }, wantErr: mailstore.ErrNotAllowed},
		{name: "delete missing", op: func() error { return acc.DeleteMailbox(ctx, "nope") }, wantErr: mailstore.ErrNoSuchMailbox},
		{name: "delete leaf", op: func() error { return acc.DeleteMailbox(ctx, "a/b/c") }},
		{name: "delete parent now", op: func() error { return acc.DeleteMailbox(ctx, "a/b") }},
		{name: "lookup deleted", op: func() error { _, err := acc.Mailbox(ctx, "a/b"); return err }, wantErr: mailstore.ErrNoSuchMailbox},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
	names := mailboxNames(t, acc)
	if !slices.Contains(names, "a") || slices.Contains(names, "a/b") || !slices.Contains(names, "Old Sent") {
		t.Errorf("mailboxes = %v", names)
	}
	mb, _ := acc.Mailbox(ctx, "Old Sent")
	if mb.SpecialUse != mailstore.SpecialSent {
		t.Errorf("special use = %q", mb.SpecialUse)
	}
}

func TestDeleteMailboxRemovesMailAndUsage(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	ctx := context.Background()
	mb, _ := acc.CreateMailbox(ctx, "Tmp", "")
	if _, err := acc.Append(ctx, "Tmp", strings.NewReader("Subject: x\r\n\r\nbody\r\n"), mailstore.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	if used, _, _ := acc.Usage(ctx); used == 0 {
		t.Fatal("usage 0 after append")
	}
	st, _ := acc.Status(ctx, mb.ID)
	var events []mailstore.Event
	stop := acc.Watch(func(e mailstore.Event) { events = append(events, e) })
	if err := acc.DeleteMailbox(ctx, "Tmp"); err != nil {
		t.Fatal(err)
	}
	stop()
	if len(events) != 1 || events[0].Kind != mailstore.EventMailboxes || events[0].MailboxID != mb.ID || events[0].ModSeq <= st.HighestModSeq {
		t.Errorf("delete events = %+v (modseq was %d)", events, st.HighestModSeq)
	}
	if used, _, _ := acc.Usage(ctx); used != 0 {
		t.Errorf("usage %d after delete", used)
	}
	if _, err := acc.Snapshot(ctx, mb.ID); !errors.Is(err, mailstore.ErrNoSuchMailbox) {
		t.Errorf("Snapshot of deleted mailbox: %v", err)
	}
	// Re-creating the name gives a new ID and a new UIDVALIDITY.
	mb2, err := acc.CreateMailbox(ctx, "Tmp", "")
	if err != nil || mb2.ID == mb.ID || mb2.UIDValidity <= mb.UIDValidity {
		t.Errorf("recreate: %+v vs %+v, %v", mb2, mb, err)
	}
}

func TestRenameMailbox(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	ctx := context.Background()
	for _, n := range []string{"p/q/r", "p/s", "pq"} {
		if _, err := acc.CreateMailbox(ctx, n, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := acc.SetSubscribed(ctx, "p/q", true); err != nil {
		t.Fatal(err)
	}
	before, _ := acc.Mailbox(ctx, "p/q")
	res, err := acc.Append(ctx, "p/q", strings.NewReader(testMessage("keep", "x")), mailstore.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		old, new string
		wantErr  error
	}{
		{name: "into itself", old: "p", new: "p/x", wantErr: mailstore.ErrNotAllowed},
		{name: "onto existing", old: "p/s", new: "pq", wantErr: mailstore.ErrMailboxExists},
		{name: "same name", old: "p", new: "p", wantErr: mailstore.ErrMailboxExists},
		{name: "missing", old: "zz", new: "yy", wantErr: mailstore.ErrNoSuchMailbox},
		{name: "bad new", old: "p", new: "a/../b", wantErr: mailstore.ErrBadMailboxName},
		{name: "with children, new parents", old: "p", new: "x/y"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := acc.RenameMailbox(ctx, tc.old, tc.new)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
	want := []string{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash", "pq", "x", "x/y", "x/y/q", "x/y/q/r", "x/y/s"}
	if got := mailboxNames(t, acc); !slices.Equal(got, want) {
		t.Fatalf("after rename: %v\nwant %v", got, want)
	}
	after, err := acc.Mailbox(ctx, "x/y/q")
	if err != nil || after.ID != before.ID || after.UIDValidity != before.UIDValidity || !after.Subscribed {
		t.Fatalf("renamed mailbox %+v (before %+v), %v", after, before, err)
	}
	if got := readMessage(t, acc, after.ID, res.UID); got != testMessage("keep", "x") {
		t.Errorf("message lost in rename")
	}
	subs, _ := acc.Subscriptions(ctx)
	if slices.Contains(subs, "p/q") || !slices.Contains(subs, "x/y/q") {
		t.Errorf("subscriptions = %v", subs)
	}
}

func TestRenameInbox(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	ctx := context.Background()
	if _, err := acc.CreateMailbox(ctx, "INBOX/child", ""); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		deliver(t, acc, testMessage("in", "x"))
	}
	in := inboxID(t, acc)
	if err := acc.RenameMailbox(ctx, "inbox", "Old Inbox"); err != nil {
		t.Fatal(err)
	}
	snap, _ := acc.Snapshot(ctx, in)
	if len(snap.Messages) != 0 {
		t.Errorf("INBOX not empty after rename: %v", uids(snap))
	}
	old, err := acc.Mailbox(ctx, "Old Inbox")
	if err != nil {
		t.Fatal(err)
	}
	snap, _ = acc.Snapshot(ctx, old.ID)
	if len(snap.Messages) != 3 {
		t.Errorf("renamed INBOX has %d messages", len(snap.Messages))
	}
	if _, err := acc.Mailbox(ctx, "INBOX/child"); err != nil {
		t.Errorf("INBOX child renamed: %v", err)
	}
	if err := acc.RenameMailbox(ctx, "INBOX", "Old Inbox"); !errors.Is(err, mailstore.ErrMailboxExists) {
		t.Errorf("rename INBOX onto existing: %v", err)
	}
	// INBOX keeps working.
	if res := deliver(t, acc, testMessage("after", "x")); res.MailboxID != in || res.UID != 4 {
		t.Errorf("delivery after INBOX rename = %+v", res)
	}
	checkCounters(t, acc)
}

func TestSubscriptions(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	ctx := context.Background()
	if err := acc.SetSubscribed(ctx, "Ghost", true); err != nil {
		t.Fatal(err) // a name that does not exist may be subscribed
	}
	if err := acc.SetSubscribed(ctx, "Trash", false); err != nil {
		t.Fatal(err)
	}
	if err := acc.SetSubscribed(ctx, "a%", true); !errors.Is(err, mailstore.ErrBadMailboxName) {
		t.Errorf("subscribe bad name: %v", err)
	}
	subs, err := acc.Subscriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Archive", "Drafts", "Ghost", "INBOX", "Junk", "Sent"}
	if !slices.Equal(subs, want) {
		t.Errorf("subscriptions = %v, want %v", subs, want)
	}
	mb, _ := acc.Mailbox(ctx, "Trash")
	if mb.Subscribed {
		t.Errorf("Trash still subscribed")
	}
}

func TestCopyMove(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	ctx := context.Background()
	in := inboxID(t, acc)
	for i := 0; i < 4; i++ {
		deliver(t, acc, testMessage("m", strings.Repeat("x", i)))
	}
	acc.StoreFlags(ctx, in, imap.UIDSetNum(2), mailstore.FlagsAdd, []imap.Flag{imap.FlagFlagged, "kw"}, 0)
	arch, _ := acc.Mailbox(ctx, "Archive")

	var mu sync.Mutex
	var events []mailstore.Event
	stop := acc.Watch(func(e mailstore.Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
	defer stop()

	res, err := acc.Copy(ctx, in, imap.UIDSetNum(2, 3, 77), "Archive")
	if err != nil {
		t.Fatal(err)
	}
	if res.DestMailboxID != arch.ID || res.DestUIDValidity != arch.UIDValidity ||
		!slices.Equal(res.SourceUIDs, []imap.UID{2, 3}) || !slices.Equal(res.DestUIDs, []imap.UID{1, 2}) {
		t.Fatalf("Copy = %+v", res)
	}
	infos, _ := acc.Fetch(ctx, arch.ID, imap.UIDSetNum(1), mailstore.FetchOptions{Envelope: true})
	if !slices.Equal(infos[0].Flags, []imap.Flag{imap.FlagFlagged, "kw"}) || infos[0].Envelope.Subject != "m" {
		t.Errorf("copied row = %+v", infos[0])
	}
	if readMessage(t, acc, arch.ID, 1) != readMessage(t, acc, in, 2) {
		t.Errorf("copied bytes differ")
	}
	used1, _, _ := acc.Usage(ctx)

	res, err = acc.Move(ctx, in, imap.UIDSet{{Start: 3, Stop: 0}}, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.SourceUIDs, []imap.UID{3, 4}) || !slices.Equal(res.DestUIDs, []imap.UID{3, 4}) {
		t.Fatalf("Move = %+v", res)
	}
	snap, _ := acc.Snapshot(ctx, in)
	if !slices.Equal(uids(snap), []imap.UID{1, 2}) {
		t.Errorf("source after move: %v", uids(snap))
	}
	if used2, _, _ := acc.Usage(ctx); used2 != used1 {
		t.Errorf("move changed usage: %d -> %d", used1, used2)
	}
	if got := readMessage(t, acc, arch.ID, 4); got != testMessage("m", "xxx") {
		t.Errorf("moved bytes differ: %q", got)
	}
	if _, err := acc.Copy(ctx, in, imap.UIDSetNum(1), "Nope"); !errors.Is(err, mailstore.ErrNoSuchMailbox) {
		t.Errorf("copy to missing: %v", err)
	}
	if _, err := acc.Move(ctx, in, imap.UIDSetNum(1), "../x"); !errors.Is(err, mailstore.ErrBadMailboxName) {
		t.Errorf("move to bad name: %v", err)
	}
	// Copy into the same mailbox gives new UIDs.
	res, err = acc.Copy(ctx, in, imap.UIDSetNum(1), "INBOX")
	if err != nil || !slices.Equal(res.DestUIDs, []imap.UID{5}) {
		t.Errorf("copy into self = %+v, %v", res, err)
	}

	mu.Lock()
	defer mu.Unlock()
	// The move's appends come before its expunges, in one modseq each.
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, strings.Repeat("A", b2i(e.Kind == mailstore.EventAppend))+strings.Repeat("X", b2i(e.Kind == mailstore.EventExpunge)))
	}
	if got := strings.Join(kinds, ""); got != "AAAAXXA" {
		t.Errorf("event kinds %q", got)
	}
	checkCounters(t, acc)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestQuota(t *testing.T) {
	limit := int64(1000)
	s, _ := newTestStore(t, Options{Quota: func(ctx context.Context, account string) (int64, error) {
		if account != testAccount {
			t.Errorf("quota asked for %q", account)
		}
		return limit, nil
	}})
	acc := openAccount(t, s, testAccount)
	ctx := context.Background()
	in := inboxID(t, acc)
	msg := testMessage("q", strings.Repeat("x", 300)) // ~450 bytes
	deliver(t, acc, msg)
	deliver(t, acc, msg)
	if _, err := acc.Deliver(ctx, strings.NewReader(msg), mailstore.DeliverOptions{}); !errors.Is(err, mailstore.ErrOverQuota) {
		t.Fatalf("third delivery: %v, want ErrOverQuota", err)
	}
	if _, err := acc.Append(ctx, "Drafts", strings.NewReader(msg), mailstore.AppendOptions{}); !errors.Is(err, mailstore.ErrOverQuota) {
		t.Fatalf("append: %v, want ErrOverQuota", err)
	}
	if _, err := acc.Copy(ctx, in, imap.UIDSetNum(1), "Archive"); !errors.Is(err, mailstore.ErrOverQuota) {
		t.Fatalf("copy: %v, want ErrOverQuota", err)
	}
	if _, err := acc.Move(ctx, in, imap.UIDSetNum(1), "Archive"); err != nil {
		t.Fatalf("move must not count against quota: %v", err)
	}
	used, lim, err := acc.Usage(ctx)
	if err != nil || used != 2*int64(len(msg)) || lim != limit {
		t.Errorf("Usage = %d, %d, %v", used, lim, err)
	}
	// A refused delivery leaves no file behind.
	snap, _ := acc.Snapshot(ctx, in)
	if len(snap.Messages) != 1 {
		t.Errorf("INBOX has %d messages", len(snap.Messages))
	}
	limit = 0 // unlimited
	deliver(t, acc, msg)
	checkCounters(t, acc)
}

func TestMaildropLockAndClose(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	a1 := openAccount(t, s, testAccount)
	a2 := openAccount(t, s, testAccount)
	ctx := context.Background()
	unlock, err := a1.LockMaildrop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a2.LockMaildrop(ctx); !errors.Is(err, mailstore.ErrInUse) {
		t.Fatalf("second lock: %v", err)
	}
	deliver(t, a2, testMessage("while locked", "x")) // delivery is not blocked
	unlock()
	unlock() // idempotent
	unlock2, err := a2.LockMaildrop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unlock2()

	if err := a1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a1.ListMailboxes(ctx); !errors.Is(err, mailstore.ErrClosed) {
		t.Errorf("closed handle: %v", err)
	}
	if _, err := a2.ListMailboxes(ctx); err != nil {
		t.Errorf("other handle after close: %v", err)
	}
	if _, err := s.Open(ctx, "not an address"); !errors.Is(err, mailstore.ErrBadAccountName) {
		t.Errorf("bad account name: %v", err)
	}

	// Remove: open handles get ErrClosed; a new open starts empty.
	if err := s.Remove(ctx, testAccount); err != nil {
		t.Fatal(err)
	}
	if _, err := a2.ListMailboxes(ctx); !errors.Is(err, mailstore.ErrClosed) {
		t.Errorf("handle on removed account: %v", err)
	}
	if _, err := a2.Deliver(ctx, strings.NewReader("x"), mailstore.DeliverOptions{}); !errors.Is(err, mailstore.ErrClosed) {
		t.Errorf("deliver on removed account: %v", err)
	}
	if err := s.Remove(ctx, testAccount); !errors.Is(err, mailstore.ErrNoSuchAccount) {
		t.Errorf("remove twice: %v", err)
	}
	a3 := openAccount(t, s, testAccount)
	snap, err := a3.Snapshot(ctx, inboxID(t, a3))
	if err != nil || len(snap.Messages) != 0 {
		t.Errorf("new account after remove: %d messages, %v", len(snap.Messages), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a3.ListMailboxes(ctx); !errors.Is(err, mailstore.ErrClosed) {
		t.Errorf("handle after store close: %v", err)
	}
	if _, err := s.Open(ctx, testAccount); !errors.Is(err, mailstore.ErrClosed) {
		t.Errorf("open after store close: %v", err)
	}
}
