package storetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/mailstore"
)

// testStore covers Store: opening accounts, handles, Remove and Close.
func testStore(t *testing.T, b Backend) {
	t.Run("DefaultMailboxes", func(t *testing.T) {
		f, acc := newAccount(t, b)
		if acc.Name() != alice {
			t.Errorf("Name() = %q, want %q", acc.Name(), alice)
		}
		mbs, err := acc.ListMailboxes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		ids := map[int64]bool{}
		for _, mb := range mbs {
			names = append(names, mb.Name)
			if mb.ID == 0 || ids[mb.ID] || mb.UIDValidity == 0 || !mb.Subscribed {
				t.Errorf("default mailbox %+v: want a distinct non-zero ID, a UIDVALIDITY, subscribed", mb)
			}
			ids[mb.ID] = true
		}
		if !slices.Equal(names, defaultNames()) {
			t.Fatalf("ListMailboxes = %v, want the defaults %v, sorted", names, defaultNames())
		}
		for _, d := range mailstore.DefaultMailboxes {
			if mb := mailbox(t, acc, d.Name); mb.SpecialUse != d.SpecialUse {
				t.Errorf("%s: special use %q, want %q", d.Name, mb.SpecialUse, d.SpecialUse)
			}
		}
		subs, err := acc.Subscriptions(t.Context())
		if err != nil || !slices.Equal(subs, defaultNames()) {
			t.Errorf("Subscriptions = %v, %v; want the defaults", subs, err)
		}
		// Another handle, and a handle after every handle closed, see the
		// same mailboxes: the defaults are created once.
		if got := mailboxNames(t, f.open(t, alice)); !slices.Equal(got, names) {
			t.Errorf("second handle lists %v", got)
		}
		acc.Close()
		again := f.open(t, alice)
		for _, mb := range mbs {
			if got := mailbox(t, again, mb.Name); got != mb {
				t.Errorf("after reopening the account: %+v, was %+v", got, mb)
			}
		}
	})

	t.Run("HandlesShareState", func(t *testing.T) {
		f := newFixture(t, b)
		a1, a2 := f.open(t, alice), f.open(t, alice)
		rec, _ := watch(t, a2)
		res := deliver(t, a1, message("shared", "x"))
		if got := readMessage(t, a2, res.MailboxID, res.UID); got != message("shared", "x") {
			t.Errorf("other handle reads %q", got)
		}
		mb := create(t, a2, "Made Elsewhere")
		if got := mailbox(t, a1, "Made Elsewhere"); got.ID != mb.ID {
			t.Errorf("first handle sees %+v, created %+v", got, mb)
		}
		evs := rec.wait(t, 2)
		want := []string{eventString(mailstore.Event{Kind: mailstore.EventAppend, MailboxID: res.MailboxID, UID: res.UID}),
			eventString(mailstore.Event{Kind: mailstore.EventMailboxes, MailboxID: mb.ID})}
		if got := eventStrings(evs); !slices.Equal(got, want) {
			t.Errorf("events on the other handle = %v, want %v", got, want)
		}
	})

	t.Run("AccountsAreSeparate", func(t *testing.T) {
		f := newFixture(t, b)
		a, bo := f.open(t, alice), f.open(t, bob)
		rec, _ := watch(t, bo)
		deliver(t, a, message("for alice", "x"))
		create(t, a, "Private")
		deliver(t, bo, message("for bob", "x"))
		if snap := snapshot(t, bo, mailbox(t, bo, mailstore.Inbox).ID); len(snap.Messages) != 1 {
			t.Errorf("bob's INBOX has %d messages, want 1", len(snap.Messages))
		}
		if _, err := bo.Mailbox(t.Context(), "Private"); err == nil {
			t.Errorf("bob sees alice's mailbox")
		}
		if evs := rec.wait(t, 1); evs[0].Kind != mailstore.EventAppend || len(rec.all()) != 1 {
			t.Errorf("bob's watch saw %v, want only his own delivery", eventStrings(rec.all()))
		}
		ua, _, _ := a.Usage(t.Context())
		ub, _, _ := bo.Usage(t.Context())
		if ua != int64(len(message("for alice", "x"))) || ub != int64(len(message("for bob", "x"))) {
			t.Errorf("usage alice %d bob %d", ua, ub)
		}
	})

	t.Run("BadAccountName", func(t *testing.T) {
		f := newFixture(t, b)
		for _, name := range []string{"", "not an address", "no-at-sign", "@example.org", "alice@", "a\x00b@example.org"} {
			acc, err := f.store.Open(t.Context(), name)
			if err == nil {
				acc.Close()
			}
			wantErr(t, "Open("+strings.ToValidUTF8(name, "?")+")", err, mailstore.ErrBadAccountName)
		}
	})

	t.Run("HandleClose", func(t *testing.T) {
		f := newFixture(t, b)
		a1, a2 := f.open(t, alice), f.open(t, alice)
		if err := a1.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		wantErr(t, "second Close", a1.Close(), mailstore.ErrClosed)
		_, err := a1.ListMailboxes(t.Context())
		wantErr(t, "ListMailboxes on a closed handle", err, mailstore.ErrClosed)
		_, err = a1.Deliver(t.Context(), strings.NewReader(message("x", "x")), mailstore.DeliverOptions{})
		wantErr(t, "Deliver on a closed handle", err, mailstore.ErrClosed)
		stop := a1.Watch(func(mailstore.Event) { t.Error("event on a closed handle") })
		stop() // callable, a no-op
		deliver(t, a2, message("other handle", "x"))
	})

	t.Run("Remove", func(t *testing.T) {
		f, acc := newAccount(t, b)
		other := f.open(t, bob)
		deliver(t, acc, message("doomed", "x"))
		create(t, acc, "Doomed")
		deliver(t, other, message("kept", "x"))
		if err := f.store.Remove(t.Context(), alice); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		_, err := acc.ListMailboxes(t.Context())
		wantErr(t, "ListMailboxes on a removed account", err, mailstore.ErrClosed)
		_, err = acc.Deliver(t.Context(), strings.NewReader(message("late", "x")), mailstore.DeliverOptions{})
		wantErr(t, "Deliver on a removed account", err, mailstore.ErrClosed)
		wantErr(t, "Remove twice", f.store.Remove(t.Context(), alice), mailstore.ErrNoSuchAccount)
		wantErr(t, "Remove of an account never opened", f.store.Remove(t.Context(), "nobody@example.org"), mailstore.ErrNoSuchAccount)
		// The name comes back as a new, empty account.
		fresh := f.open(t, alice)
		if got := mailboxNames(t, fresh); !slices.Equal(got, defaultNames()) {
			t.Errorf("mailboxes after Remove and Open = %v, want the defaults", got)
		}
		if snap := snapshot(t, fresh, mailbox(t, fresh, mailstore.Inbox).ID); len(snap.Messages) != 0 {
			t.Errorf("new account has %d messages", len(snap.Messages))
		}
		if used, _, _ := fresh.Usage(t.Context()); used != 0 {
			t.Errorf("new account uses %d bytes", used)
		}
		if snap := snapshot(t, other, mailbox(t, other, mailstore.Inbox).ID); len(snap.Messages) != 1 {
			t.Errorf("another account lost mail: %d messages", len(snap.Messages))
		}
	})

	t.Run("Close", func(t *testing.T) {
		f, acc := newAccount(t, b)
		if err := f.store.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		_, err := acc.Snapshot(t.Context(), 1)
		wantErr(t, "Snapshot after Store.Close", err, mailstore.ErrClosed)
		_, err = acc.Deliver(t.Context(), strings.NewReader(message("x", "x")), mailstore.DeliverOptions{})
		wantErr(t, "Deliver after Store.Close", err, mailstore.ErrClosed)
		_, err = f.store.Open(t.Context(), alice)
		wantErr(t, "Open after Close", err, mailstore.ErrClosed)
		wantErr(t, "Remove after Close", f.store.Remove(t.Context(), alice), mailstore.ErrClosed)
		wantErr(t, "second Close", f.store.Close(), mailstore.ErrClosed)
	})
}
