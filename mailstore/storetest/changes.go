package storetest

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

func expunged(t *testing.T, acc mailstore.Account, id int64, modseq uint64) imap.UIDSet {
	t.Helper()
	set, err := acc.Expunged(t.Context(), id, modseq)
	if err != nil {
		t.Fatalf("Expunged(%d, %d): %v", id, modseq, err)
	}
	return set
}

// checkExpunged checks that Expunged(modseq) names every UID of gone and
// none of the mailbox's messages.
func checkExpunged(t *testing.T, acc mailstore.Account, id int64, modseq uint64, what string, gone ...imap.UID) {
	t.Helper()
	set := expunged(t, acc, id, modseq)
	for _, uid := range gone {
		if !set.Contains(uid) {
			t.Errorf("%s: Expunged(%d) = %v lacks %d", what, modseq, set, uid)
		}
	}
	for _, m := range snapshot(t, acc, id).Messages {
		if set.Contains(m.UID) {
			t.Errorf("%s: Expunged(%d) = %v names UID %d, which exists", what, modseq, set, m.UID)
		}
	}
	if len(gone) == 0 && len(set) > 0 {
		t.Errorf("%s: Expunged(%d) = %v, want nothing", what, modseq, set)
	}
}

// testChanges covers what CONDSTORE and QRESYNC (RFC 7162) read: Fetch
// with ChangedSince and Expunged.
func testChanges(t *testing.T, b Backend) {
	t.Run("ChangedSince", func(t *testing.T) {
		_, acc, in := newInbox(t, b)
		deliverN(t, acc, 5, message("m", "x"))
		base := status(t, acc, in.ID).HighestModSeq
		all := imap.UIDSet{{Start: 1, Stop: 0}}
		changed := func(set imap.UIDSet, since uint64) []imap.UID {
			t.Helper()
			return infoUIDs(fetch(t, acc, in.ID, set, mailstore.FetchOptions{ChangedSince: since}))
		}
		if got := changed(all, base); len(got) != 0 {
			t.Errorf("changed since HIGHESTMODSEQ = %v, want none", got)
		}
		if got := changed(all, 1); len(got) != 5 {
			t.Errorf("changed since 1 = %v, want all 5", got)
		}
		storeFlags(t, acc, in.ID, imap.UIDSetNum(4), mailstore.FlagsAdd, imap.FlagSeen)
		mid := status(t, acc, in.ID).HighestModSeq
		storeFlags(t, acc, in.ID, imap.UIDSetNum(2), mailstore.FlagsAdd, "Later")
		storeFlags(t, acc, in.ID, imap.UIDSetNum(5), mailstore.FlagsAdd, imap.FlagSeen) // no change
		storeFlags(t, acc, in.ID, imap.UIDSetNum(5), mailstore.FlagsRemove, imap.FlagSeen)
		res := deliver(t, acc, message("new", "x"))
		rows := fetch(t, acc, in.ID, all, mailstore.FetchOptions{ChangedSince: base, Envelope: true})
		if got := infoUIDs(rows); !slices.Equal(got, []imap.UID{2, 4, 5, res.UID}) {
			t.Errorf("changed since %d = %v, want [2 4 5 %d] in UID order", base, got, res.UID)
		}
		for _, r := range rows {
			if r.ModSeq <= base || r.Envelope == nil {
				t.Errorf("changed row %+v: modseq not above %d, or no envelope", r, base)
			}
		}
		if got := changed(all, mid); !slices.Equal(got, []imap.UID{2, 5, res.UID}) {
			t.Errorf("changed since %d = %v, want [2 5 %d]", mid, got, res.UID)
		}
		if got := changed(imap.UIDSet{{Start: 3, Stop: 4}, {Start: 1, Stop: 1}}, base); !slices.Equal(got, []imap.UID{4}) {
			t.Errorf("changed in 1,3:4 since %d = %v, want [4]", base, got)
		}
		if got := changed(imap.UIDSet{{Start: 6, Stop: 0}}, base); !slices.Equal(got, []imap.UID{res.UID}) {
			t.Errorf("changed in 6:* since %d = %v, want [%d]", base, got, res.UID)
		}
	})

	t.Run("Expunged", func(t *testing.T) {
		_, acc, in := newInbox(t, b)
		arch := mailbox(t, acc, "Archive")
		deliverN(t, acc, 8, message("m", "x"))
		base := status(t, acc, in.ID).HighestModSeq
		checkExpunged(t, acc, in.ID, 0, "nothing expunged yet")
		storeFlags(t, acc, in.ID, imap.UIDSet{{Start: 2, Stop: 3}, {Start: 5, Stop: 5}}, mailstore.FlagsAdd, imap.FlagDeleted)
		checkExpunged(t, acc, in.ID, base, "flags are no expunge")
		expunge(t, acc, in.ID, nil)
		first := status(t, acc, in.ID).HighestModSeq
		checkExpunged(t, acc, in.ID, base, "after expunge", 2, 3, 5)
		checkExpunged(t, acc, in.ID, first, "since the expunge")

		if _, err := acc.Move(t.Context(), in.ID, imap.UIDSetNum(7, 8), "Archive"); err != nil {
			t.Fatal(err)
		}
		moved := status(t, acc, in.ID).HighestModSeq
		checkExpunged(t, acc, in.ID, first, "after a move out", 7, 8)
		checkExpunged(t, acc, in.ID, base, "since before both", 2, 3, 5, 7, 8)
		if set := expunged(t, acc, in.ID, first); set.Contains(2) || set.Contains(5) {
			t.Errorf("Expunged(%d) = %v names UIDs expunged at or before that modseq", first, set)
		}
		checkExpunged(t, acc, arch.ID, 0, "the move's destination")
		deliver(t, acc, message("later", "x"))
		checkExpunged(t, acc, in.ID, moved, "a delivery is no expunge")

		// Renaming INBOX moves its messages out of it.
		left := snapUIDs(snapshot(t, acc, in.ID))
		if err := acc.RenameMailbox(t.Context(), mailstore.Inbox, "Old"); err != nil {
			t.Fatal(err)
		}
		checkExpunged(t, acc, in.ID, moved, "after renaming INBOX", left...)

		_, err := acc.Expunged(t.Context(), 99999, 0)
		wantErr(t, "Expunged of no mailbox", err, mailstore.ErrNoSuchMailbox)
	})

	t.Run("ExpungedSurvivesRestart", func(t *testing.T) {
		f, acc, in := newInbox(t, b)
		needReopen(t, b)
		deliverN(t, acc, 3, message("m", "x"))
		base := status(t, acc, in.ID).HighestModSeq
		storeFlags(t, acc, in.ID, imap.UIDSetNum(2), mailstore.FlagsAdd, imap.FlagDeleted)
		expunge(t, acc, in.ID, nil)
		f.reopen(t)
		acc = f.open(t, alice)
		checkExpunged(t, acc, in.ID, base, "after a restart", 2)
	})
}
