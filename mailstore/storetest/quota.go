package storetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// testQuota covers Usage and ErrOverQuota at Deliver, Append and Copy.
func testQuota(t *testing.T, b Backend) {
	msg := message("q", strings.Repeat("x", 300))
	size := int64(len(msg))

	t.Run("Refusals", func(t *testing.T) {
		f := newFixture(t, b)
		f.quota.Store(2*size + size/2)
		acc := f.open(t, alice)
		in := mailbox(t, acc, mailstore.Inbox)
		deliver(t, acc, msg)
		deliver(t, acc, msg)
		used, limit, err := acc.Usage(t.Context())
		if err != nil || used != 2*size || limit != 2*size+size/2 {
			t.Fatalf("Usage = %d, %d, %v; want %d, %d", used, limit, err, 2*size, 2*size+size/2)
		}
		before := snapshot(t, acc, in.ID)
		rec, _ := watch(t, acc)
		_, err = acc.Deliver(t.Context(), strings.NewReader(msg), mailstore.DeliverOptions{})
		wantErr(t, "Deliver over quota", err, mailstore.ErrOverQuota)
		_, err = acc.Append(t.Context(), "Drafts", strings.NewReader(msg), mailstore.AppendOptions{})
		wantErr(t, "Append over quota", err, mailstore.ErrOverQuota)
		_, err = acc.Copy(t.Context(), in.ID, imap.UIDSetNum(1), "Archive")
		wantErr(t, "Copy over quota", err, mailstore.ErrOverQuota)
		// Refusals leave nothing behind.
		for _, n := range []string{mailstore.Inbox, "Drafts", "Archive"} {
			if st := status(t, acc, mailbox(t, acc, n).ID); n != mailstore.Inbox && st.Messages != 0 {
				t.Errorf("%s holds %d messages after refusals", n, st.Messages)
			}
		}
		if after := snapshot(t, acc, in.ID); after.HighestModSeq != before.HighestModSeq || !slices.Equal(snapUIDs(after), snapUIDs(before)) {
			t.Errorf("refusals changed INBOX")
		}
		// MOVE does not grow the account.
		res, err := acc.Move(t.Context(), in.ID, imap.UIDSetNum(1), "Archive")
		if err != nil || len(res.DestUIDs) != 1 {
			t.Fatalf("Move with a full quota = %+v, %v; want it done", res, err)
		}
		// The first event is the move's: the refusals sent none.
		if evs := rec.wait(t, 1); evs[0].Kind != mailstore.EventAppend || evs[0].MailboxID != res.DestMailboxID {
			t.Errorf("first event after refusals: %+v, want the move's append", evs[0])
		}
		if used, _, _ := acc.Usage(t.Context()); used != 2*size {
			t.Errorf("Usage after refusals and a move = %d, want %d", used, 2*size)
		}
		checkUsage(t, acc)
	})

	t.Run("Boundary", func(t *testing.T) {
		f := newFixture(t, b)
		f.quota.Store(3 * size)
		acc := f.open(t, alice)
		in := mailbox(t, acc, mailstore.Inbox)
		// A message bigger than the whole quota is refused, even in an
		// empty account.
		_, err := acc.Deliver(t.Context(), strings.NewReader(strings.Repeat("y", int(4*size))), mailstore.DeliverOptions{})
		wantErr(t, "Deliver of a message above the quota", err, mailstore.ErrOverQuota)
		deliver(t, acc, msg)
		deliver(t, acc, msg)
		// One that brings usage exactly to the quota is accepted.
		deliver(t, acc, msg)
		if used, _, _ := acc.Usage(t.Context()); used != 3*size {
			t.Fatalf("Usage = %d, want the quota %d", used, 3*size)
		}
		_, err = acc.Append(t.Context(), mailstore.Inbox, strings.NewReader("x"), mailstore.AppendOptions{})
		wantErr(t, "Append of one byte at the quota", err, mailstore.ErrOverQuota)
		// Expunging makes room again.
		storeFlags(t, acc, in.ID, imap.UIDSetNum(1), mailstore.FlagsAdd, imap.FlagDeleted)
		expunge(t, acc, in.ID, nil)
		if res := deliver(t, acc, msg); res.UID != 4 {
			t.Errorf("delivery after an expunge made room = %+v", res)
		}
		// Deleting a mailbox makes room too.
		if _, err := acc.Move(t.Context(), in.ID, allUIDs, "Archive"); err != nil {
			t.Fatal(err)
		}
		if err := acc.DeleteMailbox(t.Context(), "Archive"); err != nil {
			t.Fatal(err)
		}
		if used, _, _ := acc.Usage(t.Context()); used != 0 {
			t.Errorf("Usage after deleting every message's mailbox = %d", used)
		}
		deliver(t, acc, msg)
		checkUsage(t, acc)
	})

	t.Run("Changes", func(t *testing.T) {
		f, acc := newAccount(t, b)
		// 0 is unlimited.
		for range 3 {
			deliver(t, acc, msg)
		}
		if used, limit, _ := acc.Usage(t.Context()); used != 3*size || limit != 0 {
			t.Errorf("Usage = %d, %d; want %d, 0 (unlimited)", used, limit, 3*size)
		}
		// A quota lowered below usage refuses new mail and reports the
		// new limit, and the mail already there stays usable.
		f.quota.Store(size)
		_, err := acc.Deliver(t.Context(), strings.NewReader(msg), mailstore.DeliverOptions{})
		wantErr(t, "Deliver above a lowered quota", err, mailstore.ErrOverQuota)
		if _, limit, _ := acc.Usage(t.Context()); limit != size {
			t.Errorf("Usage limit %d after the quota changed to %d", limit, size)
		}
		in := mailbox(t, acc, mailstore.Inbox)
		storeFlags(t, acc, in.ID, allUIDs, mailstore.FlagsAdd, imap.FlagSeen)
		if got := readMessage(t, acc, in.ID, 1); got != msg {
			t.Errorf("message over quota reads %q", got)
		}
		f.quota.Store(0)
		deliver(t, acc, msg)
		checkUsage(t, acc)
	})

	t.Run("Messages", func(t *testing.T) {
		f := newFixture(t, b)
		acc := f.open(t, alice)
		in := mailbox(t, acc, mailstore.Inbox)
		if n, limit, err := acc.MessageUsage(t.Context()); err != nil || n != 0 || limit != 0 {
			t.Fatalf("MessageUsage of a new account = %d, %d, %v; want 0, 0 (unlimited)", n, limit, err)
		}
		f.msgQuota.Store(3)
		deliver(t, acc, msg)
		if _, err := acc.Append(t.Context(), "Drafts", strings.NewReader(msg), mailstore.AppendOptions{}); err != nil {
			t.Fatalf("Append under the message quota: %v", err)
		}
		_, err := acc.Copy(t.Context(), in.ID, imap.UIDSetNum(1), "Archive")
		if err != nil {
			t.Fatalf("Copy up to the message quota: %v", err)
		}
		if n, limit, err := acc.MessageUsage(t.Context()); err != nil || n != 3 || limit != 3 {
			t.Fatalf("MessageUsage at the quota = %d, %d, %v; want 3, 3", n, limit, err)
		}
		_, err = acc.Deliver(t.Context(), strings.NewReader(msg), mailstore.DeliverOptions{})
		wantErr(t, "Deliver over the message quota", err, mailstore.ErrOverQuota)
		_, err = acc.Append(t.Context(), mailstore.Inbox, strings.NewReader(msg), mailstore.AppendOptions{})
		wantErr(t, "Append over the message quota", err, mailstore.ErrOverQuota)
		_, err = acc.Copy(t.Context(), in.ID, imap.UIDSetNum(1), "Junk")
		wantErr(t, "Copy over the message quota", err, mailstore.ErrOverQuota)
		if st := status(t, acc, mailbox(t, acc, "Junk").ID); st.Messages != 0 {
			t.Errorf("Junk holds %d messages after a refused copy", st.Messages)
		}
		// MOVE does not add messages.
		if _, err := acc.Move(t.Context(), in.ID, imap.UIDSetNum(1), "Junk"); err != nil {
			t.Fatalf("Move at the message quota: %v", err)
		}
		// Expunging makes room; a copy of two with room for none is
		// refused whole.
		junk := mailbox(t, acc, "Junk")
		storeFlags(t, acc, junk.ID, allUIDs, mailstore.FlagsAdd, imap.FlagDeleted)
		expunge(t, acc, junk.ID, nil)
		drafts := mailbox(t, acc, "Drafts")
		archive := mailbox(t, acc, "Archive")
		if _, err := acc.Copy(t.Context(), archive.ID, allUIDs, "Drafts"); err != nil {
			t.Fatalf("Copy after an expunge made room: %v", err)
		}
		_, err = acc.Copy(t.Context(), drafts.ID, allUIDs, mailstore.Inbox)
		wantErr(t, "Copy of two at the message quota", err, mailstore.ErrOverQuota)
		if n, _, _ := acc.MessageUsage(t.Context()); n != 3 {
			t.Errorf("MessageUsage after refusals = %d, want 3", n)
		}
		// Unlimited again.
		f.msgQuota.Store(0)
		deliver(t, acc, msg)
		if n, limit, _ := acc.MessageUsage(t.Context()); n != 4 || limit != 0 {
			t.Errorf("MessageUsage with the quota lifted = %d, %d; want 4, 0", n, limit)
		}
	})
}
