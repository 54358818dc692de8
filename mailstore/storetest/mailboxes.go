package storetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// badNames are mailbox names every backend refuses with ErrBadMailboxName.
var badNames = []string{"", "a//b", "/a", "a/", "a%", "a*b", "a/../b", "..", "./a", "bad\x01control", "not\xffutf8"}

// testMailboxes covers CREATE, DELETE, RENAME, special use and
// subscriptions.
func testMailboxes(t *testing.T, b Backend) {
	t.Run("CreateNested", func(t *testing.T) {
		_, acc := newAccount(t, b)
		rec, _ := watch(t, acc)
		mb := create(t, acc, "Projects/Posthouse/Store")
		if mb.ID == 0 || mb.Name != "Projects/Posthouse/Store" || mb.UIDValidity == 0 || mb.SpecialUse != "" || mb.Subscribed {
			t.Errorf("CreateMailbox = %+v: want an ID, the name, a UIDVALIDITY, no special use, not subscribed", mb)
		}
		if got := mailbox(t, acc, "Projects/Posthouse/Store"); got != mb {
			t.Errorf("Mailbox = %+v, CreateMailbox returned %+v", got, mb)
		}
		want := withDefaults("Projects", "Projects/Posthouse", "Projects/Posthouse/Store")
		if got := mailboxNames(t, acc); !slices.Equal(got, want) {
			t.Errorf("ListMailboxes = %v, want %v", got, want)
		}
		// One event per mailbox made; the parents' IDs are new too.
		evs, ids := mailboxEvents(t, rec, 3)
		for _, n := range []string{"Projects", "Projects/Posthouse", "Projects/Posthouse/Store"} {
			if !ids[mailbox(t, acc, n).ID] {
				t.Errorf("no event for %s: %v", n, eventStrings(evs))
			}
		}
		// An existing parent is left as it is.
		sub := create(t, acc, "Projects/Other")
		if sub.Name != "Projects/Other" || mailbox(t, acc, "Projects").ID != mailbox(t, acc, "Projects").ID {
			t.Errorf("create under an existing parent: %+v", sub)
		}
		checkConsistent(t, acc, mb.ID)
		if st := status(t, acc, mb.ID); st.Messages != 0 || st.UIDNext != 1 || st.UIDValidity != mb.UIDValidity {
			t.Errorf("new mailbox status %+v: want empty, UIDNEXT 1", st)
		}
	})

	t.Run("Names", func(t *testing.T) {
		_, acc := newAccount(t, b)
		// UTF-8, spaces, case and punctuation are kept as given, and
		// listed in byte order (not a collation).
		names := []string{"Entwürfe", "Family Photos", "日本語/メール", "archive", "Zebra", "a-b.c_d", "Ümlaut", "[Gmail]/All Mail"}
		for _, n := range names {
			if mb := create(t, acc, n); mb.Name != n {
				t.Errorf("CreateMailbox(%q).Name = %q", n, mb.Name)
			}
			if err := acc.SetSubscribed(t.Context(), n, true); err != nil {
				t.Fatal(err)
			}
		}
		want := withDefaults(append(names, "日本語", "[Gmail]")...)
		if got := mailboxNames(t, acc); !slices.Equal(got, want) {
			t.Errorf("ListMailboxes = %q, want %q (byte order)", got, want)
		}
		subs, err := acc.Subscriptions(t.Context())
		wantSubs := withDefaults(names...)
		if err != nil || !slices.Equal(subs, wantSubs) {
			t.Errorf("Subscriptions = %q, %v; want %q (byte order)", subs, err, wantSubs)
		}
		// "archive" and "Archive" are two mailboxes.
		if a, b := mailbox(t, acc, "archive"), mailbox(t, acc, "Archive"); a.ID == b.ID {
			t.Errorf("archive and Archive are one mailbox")
		}
	})

	t.Run("CreateErrors", func(t *testing.T) {
		_, acc := newAccount(t, b)
		create(t, acc, "a/b")
		tests := []struct {
			name, mailbox, specialUse string
			want                      error
		}{
			{name: "existing", mailbox: "a/b", want: mailstore.ErrMailboxExists},
			{name: "existing parent", mailbox: "a", want: mailstore.ErrMailboxExists},
			{name: "INBOX", mailbox: "INBOX", want: mailstore.ErrMailboxExists},
			{name: "inbox in another case", mailbox: "iNbOx", want: mailstore.ErrMailboxExists},
			{name: "default mailbox", mailbox: "Trash", want: mailstore.ErrMailboxExists},
			{name: "unknown special use", mailbox: "x", specialUse: `\Bogus`, want: mailstore.ErrNotAllowed},
		}
		for _, n := range badNames {
			tests = append(tests, struct {
				name, mailbox, specialUse string
				want                      error
			}{name: "bad name " + strings.ToValidUTF8(n, "?"), mailbox: n, want: mailstore.ErrBadMailboxName})
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := acc.CreateMailbox(t.Context(), tc.mailbox, tc.specialUse)
				wantErr(t, "CreateMailbox("+tc.mailbox+")", err, tc.want)
			})
		}
		if got := mailboxNames(t, acc); !slices.Equal(got, withDefaults("a", "a/b")) {
			t.Errorf("failed creates left mailboxes: %v", got)
		}
	})

	t.Run("InboxName", func(t *testing.T) {
		_, acc, in := newInbox(t, b)
		for _, n := range []string{"inbox", "InBoX"} {
			if got := mailbox(t, acc, n); got != in {
				t.Errorf("Mailbox(%q) = %+v, want INBOX %+v", n, got, in)
			}
		}
		// "inbox" as a first level is INBOX; elsewhere it is a name.
		if mb := create(t, acc, "inbox/Sub"); mb.Name != "INBOX/Sub" {
			t.Errorf(`CreateMailbox("inbox/Sub").Name = %q, want "INBOX/Sub"`, mb.Name)
		}
		if mb := create(t, acc, "Lists/inbox"); mb.Name != "Lists/inbox" {
			t.Errorf(`CreateMailbox("Lists/inbox").Name = %q`, mb.Name)
		}
		res := appendMsg(t, acc, "inbox", message("lower", "x"), mailstore.AppendOptions{})
		if res.MailboxID != in.ID {
			t.Errorf(`Append("inbox") went to %d, INBOX is %d`, res.MailboxID, in.ID)
		}
	})

	t.Run("SpecialUse", func(t *testing.T) {
		_, acc := newAccount(t, b)
		mb, err := acc.CreateMailbox(t.Context(), "Old/Sent 2020", mailstore.SpecialSent)
		if err != nil || mb.SpecialUse != mailstore.SpecialSent {
			t.Fatalf("CreateMailbox with \\Sent = %+v, %v", mb, err)
		}
		if got := mailbox(t, acc, "Old"); got.SpecialUse != "" {
			t.Errorf("created parent has special use %q", got.SpecialUse)
		}
		if err := acc.RenameMailbox(t.Context(), "Old", "Older"); err != nil {
			t.Fatal(err)
		}
		if got := mailbox(t, acc, "Older/Sent 2020"); got.SpecialUse != mailstore.SpecialSent || got.ID != mb.ID {
			t.Errorf("after rename: %+v, want special use kept", got)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		_, acc := newAccount(t, b)
		create(t, acc, "a/b/c")
		tmp := create(t, acc, "Tmp")
		res := appendMsg(t, acc, "Tmp", message("in tmp", strings.Repeat("x", 100)), mailstore.AppendOptions{})
		deliver(t, acc, message("stays", "x"))
		tests := []struct {
			name, mailbox string
			want          error
		}{
			{name: "INBOX", mailbox: "INBOX", want: mailstore.ErrNotAllowed},
			{name: "inbox in another case", mailbox: "inbox", want: mailstore.ErrNotAllowed},
			{name: "with children", mailbox: "a/b", want: mailstore.ErrHasChildren},
			{name: "missing", mailbox: "nope", want: mailstore.ErrNoSuchMailbox},
			{name: "bad name", mailbox: "a//b", want: mailstore.ErrBadMailboxName},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				wantErr(t, "DeleteMailbox("+tc.mailbox+")", acc.DeleteMailbox(t.Context(), tc.mailbox), tc.want)
			})
		}
		for _, n := range []string{"a/b/c", "a/b", "a"} {
			if err := acc.DeleteMailbox(t.Context(), n); err != nil {
				t.Fatalf("DeleteMailbox(%q): %v", n, err)
			}
		}
		before := status(t, acc, tmp.ID)
		rec, _ := watch(t, acc)
		if err := acc.DeleteMailbox(t.Context(), "Tmp"); err != nil {
			t.Fatalf("DeleteMailbox(Tmp): %v", err)
		}
		evs := rec.wait(t, 1)
		if e := evs[0]; e.Kind != mailstore.EventMailboxes || e.MailboxID != tmp.ID || e.ModSeq <= before.HighestModSeq {
			t.Errorf("delete event %+v: want EventMailboxes for %d with a modseq above %d", e, tmp.ID, before.HighestModSeq)
		}
		if got := mailboxNames(t, acc); !slices.Equal(got, defaultNames()) {
			t.Errorf("after deletes: %v", got)
		}
		_, err := acc.Mailbox(t.Context(), "Tmp")
		wantErr(t, "Mailbox of a deleted mailbox", err, mailstore.ErrNoSuchMailbox)
		_, err = acc.Snapshot(t.Context(), tmp.ID)
		wantErr(t, "Snapshot of a deleted mailbox ID", err, mailstore.ErrNoSuchMailbox)
		_, _, err = acc.OpenMessage(t.Context(), tmp.ID, res.UID)
		if err == nil {
			t.Errorf("a deleted mailbox's message still opens")
		}
		checkUsage(t, acc) // its bytes no longer count
		// The name comes back as a new mailbox: new ID, greater
		// UIDVALIDITY, no messages (RFC 9051 §2.3.1.1).
		again := create(t, acc, "Tmp")
		if again.ID == tmp.ID || again.UIDValidity <= tmp.UIDValidity {
			t.Errorf("re-created mailbox %+v, deleted one %+v: want a new ID and a greater UIDVALIDITY", again, tmp)
		}
		if st := status(t, acc, again.ID); st.Messages != 0 || st.UIDNext != 1 {
			t.Errorf("re-created mailbox status %+v", st)
		}
	})

	t.Run("Rename", func(t *testing.T) {
		_, acc := newAccount(t, b)
		for _, n := range []string{"p/q/r", "p/s", "pq"} {
			create(t, acc, n)
		}
		if err := acc.SetSubscribed(t.Context(), "p/q", true); err != nil {
			t.Fatal(err)
		}
		before := mailbox(t, acc, "p/q")
		res := appendMsg(t, acc, "p/q", message("keep", "x"), mailstore.AppendOptions{Flags: []imap.Flag{imap.FlagFlagged}})
		tests := []struct {
			name, old, new string
			want           error
		}{
			{name: "into itself", old: "p", new: "p/x", want: mailstore.ErrNotAllowed},
			{name: "onto existing", old: "p/s", new: "pq", want: mailstore.ErrMailboxExists},
			{name: "onto INBOX", old: "pq", new: "inbox", want: mailstore.ErrMailboxExists},
			{name: "same name", old: "p", new: "p", want: mailstore.ErrMailboxExists},
			{name: "missing", old: "zz", new: "yy", want: mailstore.ErrNoSuchMailbox},
			{name: "bad new name", old: "p", new: "a/../b", want: mailstore.ErrBadMailboxName},
			{name: "bad old name", old: "a%", new: "b", want: mailstore.ErrBadMailboxName},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				wantErr(t, "RenameMailbox("+tc.old+", "+tc.new+")", acc.RenameMailbox(t.Context(), tc.old, tc.new), tc.want)
			})
		}
		ids := map[string]int64{}
		for _, n := range []string{"p", "p/q", "p/q/r", "p/s"} {
			ids[n] = mailbox(t, acc, n).ID
		}
		rec, _ := watch(t, acc)
		if err := acc.RenameMailbox(t.Context(), "p", "x/y"); err != nil {
			t.Fatalf("rename with children into new parents: %v", err)
		}
		want := withDefaults("pq", "x", "x/y", "x/y/q", "x/y/q/r", "x/y/s")
		if got := mailboxNames(t, acc); !slices.Equal(got, want) {
			t.Fatalf("after rename: %v, want %v", got, want)
		}
		for old, id := range ids {
			if got := mailbox(t, acc, "x/y"+old[1:]); got.ID != id {
				t.Errorf("%s became %+v, want ID %d kept", old, got, id)
			}
		}
		after := mailbox(t, acc, "x/y/q")
		if after.UIDValidity != before.UIDValidity || !after.Subscribed {
			t.Errorf("renamed mailbox %+v, before %+v: want UIDVALIDITY kept, subscription followed", after, before)
		}
		if got := readMessage(t, acc, after.ID, res.UID); got != message("keep", "x") {
			t.Errorf("message after rename: %q", got)
		}
		if mi := fetchOne(t, acc, after.ID, res.UID, mailstore.FetchOptions{}); !sameFlags(mi.Flags, []imap.Flag{imap.FlagFlagged}) {
			t.Errorf("flags after rename: %v", mi.Flags)
		}
		subs, _ := acc.Subscriptions(t.Context())
		if slices.Contains(subs, "p/q") || !slices.Contains(subs, "x/y/q") {
			t.Errorf("subscriptions after rename = %v", subs)
		}
		// Every renamed mailbox (and the new parent) gets an event.
		evs, got := mailboxEvents(t, rec, 5)
		for old, id := range ids {
			if !got[id] {
				t.Errorf("no event for renamed %s (%d): %v", old, id, eventStrings(evs))
			}
		}
		if !got[mailbox(t, acc, "x").ID] {
			t.Errorf("no event for the created parent x: %v", eventStrings(evs))
		}
		checkConsistent(t, acc, after.ID)
	})

	t.Run("RenameInbox", func(t *testing.T) {
		_, acc := newAccount(t, b)
		create(t, acc, "INBOX/child")
		in := mailbox(t, acc, mailstore.Inbox)
		for i := range 3 {
			deliver(t, acc, message("in", strings.Repeat("x", i)))
		}
		storeFlags(t, acc, in.ID, imap.UIDSetNum(2), mailstore.FlagsAdd, imap.FlagSeen, "Kw")
		if err := acc.RenameMailbox(t.Context(), "inbox", "Old Inbox"); err != nil {
			t.Fatalf("RenameMailbox(inbox): %v", err)
		}
		if got := mailbox(t, acc, mailstore.Inbox); got.ID != in.ID || got.UIDValidity != in.UIDValidity {
			t.Errorf("INBOX after rename %+v, before %+v: want the same mailbox", got, in)
		}
		if snap := snapshot(t, acc, in.ID); len(snap.Messages) != 0 || snap.UIDNext != 4 {
			t.Errorf("INBOX after rename: UIDs %v UIDNEXT %d, want empty, UIDNEXT 4", snapUIDs(snap), snap.UIDNext)
		}
		old := mailbox(t, acc, "Old Inbox")
		if old.ID == in.ID {
			t.Fatalf("renamed INBOX kept INBOX's ID")
		}
		snap := snapshot(t, acc, old.ID)
		if len(snap.Messages) != 3 {
			t.Fatalf("Old Inbox has %d messages, want 3", len(snap.Messages))
		}
		if !sameFlags(snap.Messages[1].Flags, []imap.Flag{imap.FlagSeen, "Kw"}) {
			t.Errorf("flags not moved: %v", snap.Messages[1].Flags)
		}
		if got := readMessage(t, acc, old.ID, snap.Messages[2].UID); got != message("in", "xx") {
			t.Errorf("moved message reads %q", got)
		}
		if _, err := acc.Mailbox(t.Context(), "INBOX/child"); err != nil {
			t.Errorf("INBOX's child must not be renamed: %v", err)
		}
		wantErr(t, "rename INBOX onto an existing mailbox", acc.RenameMailbox(t.Context(), "INBOX", "Old Inbox"), mailstore.ErrMailboxExists)
		// INBOX keeps its UIDs going.
		if res := deliver(t, acc, message("after", "x")); res.MailboxID != in.ID || res.UID != 4 {
			t.Errorf("delivery after renaming INBOX = %+v, want INBOX UID 4", res)
		}
		// INBOX stays, so a name under it is a fine target.
		if err := acc.RenameMailbox(t.Context(), "INBOX", "INBOX/2026"); err != nil {
			t.Fatalf("RenameMailbox(INBOX, INBOX/2026): %v", err)
		}
		under := mailbox(t, acc, "INBOX/2026")
		if got := snapUIDs(snapshot(t, acc, under.ID)); !slices.Equal(got, []imap.UID{1}) {
			t.Errorf("INBOX/2026 holds %v, want the one message INBOX had", got)
		}
		if snap := snapshot(t, acc, in.ID); len(snap.Messages) != 0 || snap.UIDNext != 5 {
			t.Errorf("INBOX after the second rename: %v UIDNEXT %d", snapUIDs(snap), snap.UIDNext)
		}
		checkUsage(t, acc)
	})

	t.Run("Subscriptions", func(t *testing.T) {
		_, acc := newAccount(t, b)
		create(t, acc, "Lists/Go")
		rec, _ := watch(t, acc)
		for _, step := range []struct {
			name string
			on   bool
		}{{"Ghost", true}, {"Lists/Go", true}, {"Lists/Go", true}, {"Trash", false}, {"Never", false}} {
			if err := acc.SetSubscribed(t.Context(), step.name, step.on); err != nil {
				t.Fatalf("SetSubscribed(%q, %v): %v", step.name, step.on, err)
			}
		}
		wantErr(t, "subscribe a bad name", acc.SetSubscribed(t.Context(), "a%", true), mailstore.ErrBadMailboxName)
		want := []string{"Archive", "Drafts", "Ghost", "INBOX", "Junk", "Lists/Go", "Sent"}
		subs, err := acc.Subscriptions(t.Context())
		if err != nil || !slices.Equal(subs, want) {
			t.Errorf("Subscriptions = %v, %v; want %v", subs, err, want)
		}
		if mb := mailbox(t, acc, "Trash"); mb.Subscribed {
			t.Errorf("Trash still subscribed")
		}
		if mb := mailbox(t, acc, "Lists/Go"); !mb.Subscribed {
			t.Errorf("Lists/Go not subscribed")
		}
		// Changes of existing mailboxes' subscriptions are events.
		evs := rec.wait(t, 2)
		lists, trash := mailbox(t, acc, "Lists/Go").ID, mailbox(t, acc, "Trash").ID
		if evs[0].Kind != mailstore.EventMailboxes || evs[0].MailboxID != lists || evs[1].MailboxID != trash {
			t.Errorf("subscription events %v, want Lists/Go (%d) then Trash (%d)", eventStrings(evs), lists, trash)
		}
		// A subscription outlives its mailbox (RFC 9051 §6.3.7).
		if err := acc.DeleteMailbox(t.Context(), "Lists/Go"); err != nil {
			t.Fatal(err)
		}
		if subs, _ := acc.Subscriptions(t.Context()); !slices.Contains(subs, "Lists/Go") {
			t.Errorf("deleting a mailbox removed its subscription: %v", subs)
		}
		// "inbox" is INBOX here too.
		if err := acc.SetSubscribed(t.Context(), "inbox", false); err != nil {
			t.Fatal(err)
		}
		if subs, _ := acc.Subscriptions(t.Context()); slices.Contains(subs, "INBOX") || slices.Contains(subs, "inbox") {
			t.Errorf("unsubscribing inbox left %v", subs)
		}
	})
}
