package storetest

import (
	"context"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// accountCalls calls every Account method that can fail, on mailbox id.
func accountCalls(acc mailstore.Account, id int64) []struct {
	name string
	call func(ctx context.Context) error
} {
	all := imap.UIDSet{{Start: 1, Stop: 0}}
	return []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Status", func(ctx context.Context) error { _, err := acc.Status(ctx, id); return err }},
		{"Snapshot", func(ctx context.Context) error { _, err := acc.Snapshot(ctx, id); return err }},
		{"Fetch", func(ctx context.Context) error {
			_, err := acc.Fetch(ctx, id, all, mailstore.FetchOptions{})
			return err
		}},
		{"FetchSummary", func(ctx context.Context) error {
			_, err := acc.Fetch(ctx, id, all, mailstore.FetchOptions{SummaryOnly: true})
			return err
		}},
		{"OpenMessage", func(ctx context.Context) error { _, _, err := acc.OpenMessage(ctx, id, 1); return err }},
		{"Search", func(ctx context.Context) error { _, err := acc.Search(ctx, id, &imap.SearchCriteria{}); return err }},
		{"StoreFlags", func(ctx context.Context) error {
			_, err := acc.StoreFlags(ctx, id, all, mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen}, 0)
			return err
		}},
		{"Expunge", func(ctx context.Context) error { _, err := acc.Expunge(ctx, id, nil); return err }},
		{"UIDExpunge", func(ctx context.Context) error { _, err := acc.Expunge(ctx, id, &all); return err }},
		{"Copy", func(ctx context.Context) error { _, err := acc.Copy(ctx, id, all, "Trash"); return err }},
		{"Move", func(ctx context.Context) error { _, err := acc.Move(ctx, id, all, "Trash"); return err }},
		{"ClaimRecent", func(ctx context.Context) error { _, err := acc.ClaimRecent(ctx, id, 2); return err }},
		{"Expunged", func(ctx context.Context) error { _, err := acc.Expunged(ctx, id, 0); return err }},
		{"FetchChangedSince", func(ctx context.Context) error {
			_, err := acc.Fetch(ctx, id, all, mailstore.FetchOptions{ChangedSince: 1})
			return err
		}},
	}
}

// testErrors covers the sentinels of calls on mailboxes that are gone and
// on closed handles.
func testErrors(t *testing.T, b Backend) {
	t.Run("MissingMailboxID", func(t *testing.T) {
		_, acc := newAccount(t, b)
		// A mailbox deleted under a selected session, and an ID that
		// never was.
		gone := create(t, acc, "Gone")
		appendMsg(t, acc, "Gone", message("m", "x"), mailstore.AppendOptions{})
		if err := acc.DeleteMailbox(t.Context(), "Gone"); err != nil {
			t.Fatal(err)
		}
		for _, id := range []int64{gone.ID, 1 << 40} {
			for _, c := range accountCalls(acc, id) {
				t.Run(c.name, func(t *testing.T) {
					wantErr(t, c.name, c.call(t.Context()), mailstore.ErrNoSuchMailbox)
				})
			}
		}
		checkUsage(t, acc)
	})

	t.Run("ClosedHandle", func(t *testing.T) {
		f, acc, in := newInbox(t, b)
		deliver(t, acc, message("m", "x"))
		if err := acc.Close(); err != nil {
			t.Fatal(err)
		}
		calls := accountCalls(acc, in.ID)
		calls = append(calls, []struct {
			name string
			call func(ctx context.Context) error
		}{
			{"ListMailboxes", func(ctx context.Context) error { _, err := acc.ListMailboxes(ctx); return err }},
			{"Mailbox", func(ctx context.Context) error { _, err := acc.Mailbox(ctx, "INBOX"); return err }},
			{"CreateMailbox", func(ctx context.Context) error { _, err := acc.CreateMailbox(ctx, "New", ""); return err }},
			{"DeleteMailbox", func(ctx context.Context) error { return acc.DeleteMailbox(ctx, "Trash") }},
			{"RenameMailbox", func(ctx context.Context) error { return acc.RenameMailbox(ctx, "Trash", "Bin") }},
			{"SetSubscribed", func(ctx context.Context) error { return acc.SetSubscribed(ctx, "Trash", false) }},
			{"Subscriptions", func(ctx context.Context) error { _, err := acc.Subscriptions(ctx); return err }},
			{"Append", func(ctx context.Context) error {
				_, err := acc.Append(ctx, "INBOX", strings.NewReader("x"), mailstore.AppendOptions{})
				return err
			}},
			{"Deliver", func(ctx context.Context) error {
				_, err := acc.Deliver(ctx, strings.NewReader("x"), mailstore.DeliverOptions{})
				return err
			}},
			{"Usage", func(ctx context.Context) error { _, _, err := acc.Usage(ctx); return err }},
			{"LockMaildrop", func(ctx context.Context) error {
				unlock, err := acc.LockMaildrop(ctx)
				if err == nil {
					unlock()
				}
				return err
			}},
		}...)
		for _, c := range calls {
			t.Run(c.name, func(t *testing.T) {
				wantErr(t, c.name+" on a closed handle", c.call(t.Context()), mailstore.ErrClosed)
			})
		}
		// Nothing reached the account.
		other := f.open(t, alice)
		if got := mailboxNames(t, other); len(got) != len(mailstore.DefaultMailboxes) {
			t.Errorf("calls on a closed handle changed mailboxes: %v", got)
		}
		if st := status(t, other, in.ID); st.Messages != 1 {
			t.Errorf("calls on a closed handle changed INBOX: %+v", st)
		}
	})
}
