package storetest

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// accountState is everything a client can observe of an account.
type accountState struct {
	mailboxes []mailstore.Mailbox
	subs      []string
	status    map[int64]mailstore.Status
	snaps     map[int64]mailstore.Snapshot
	raw       map[int64]map[imap.UID]string
	used      int64
}

func observe(t *testing.T, acc mailstore.Account) accountState {
	t.Helper()
	mbs, err := acc.ListMailboxes(t.Context())
	if err != nil {
		t.Fatalf("ListMailboxes: %v", err)
	}
	subs, err := acc.Subscriptions(t.Context())
	if err != nil {
		t.Fatalf("Subscriptions: %v", err)
	}
	used, _, err := acc.Usage(t.Context())
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	s := accountState{mailboxes: mbs, subs: subs, used: used,
		status: map[int64]mailstore.Status{}, snaps: map[int64]mailstore.Snapshot{}, raw: map[int64]map[imap.UID]string{}}
	for _, mb := range mbs {
		s.status[mb.ID] = status(t, acc, mb.ID)
		s.snaps[mb.ID] = snapshot(t, acc, mb.ID)
		s.raw[mb.ID] = map[imap.UID]string{}
		for _, m := range s.snaps[mb.ID].Messages {
			s.raw[mb.ID][m.UID] = readMessage(t, acc, mb.ID, m.UID)
		}
	}
	return s
}

// compareStates reports every difference between two observations.
func compareStates(t *testing.T, got, want accountState) {
	t.Helper()
	if !slices.Equal(got.mailboxes, want.mailboxes) {
		t.Errorf("mailboxes %+v, want %+v", got.mailboxes, want.mailboxes)
	}
	if !slices.Equal(got.subs, want.subs) {
		t.Errorf("subscriptions %v, want %v", got.subs, want.subs)
	}
	if got.used != want.used {
		t.Errorf("usage %d, want %d", got.used, want.used)
	}
	for id, st := range want.status {
		if got.status[id] != st {
			t.Errorf("mailbox %d: status %+v, want %+v", id, got.status[id], st)
		}
		g, w := got.snaps[id], want.snaps[id]
		if g.UIDNext != w.UIDNext || g.HighestModSeq != w.HighestModSeq || len(g.Messages) != len(w.Messages) {
			t.Errorf("mailbox %d: snapshot UIDs %v UIDNEXT %d modseq %d, want %v %d %d", id,
				snapUIDs(g), g.UIDNext, g.HighestModSeq, snapUIDs(w), w.UIDNext, w.HighestModSeq)
			continue
		}
		for i, m := range w.Messages {
			if gm := g.Messages[i]; gm.UID != m.UID || gm.ModSeq != m.ModSeq || !sameFlags(gm.Flags, m.Flags) {
				t.Errorf("mailbox %d: message %+v, want %+v", id, gm, m)
			}
			if got.raw[id][m.UID] != want.raw[id][m.UID] {
				t.Errorf("mailbox %d: UID %d bytes differ", id, m.UID)
			}
		}
	}
}

// testRestart covers what survives closing the Store and opening its
// storage again (Backend.Reopen).
func testRestart(t *testing.T, b Backend) {
	t.Run("Durable", func(t *testing.T) {
		needReopen(t, b)
		f, acc := newAccount(t, b)
		in := mailbox(t, acc, mailstore.Inbox)
		deliverN(t, acc, 3, message("m", "x"))
		storeFlags(t, acc, in.ID, imap.UIDSetNum(1), mailstore.FlagsAdd, imap.FlagSeen, "Kw")
		storeFlags(t, acc, in.ID, imap.UIDSetNum(3), mailstore.FlagsAdd, imap.FlagDeleted)
		expunge(t, acc, in.ID, nil) // UIDNEXT 4 with 2 the highest UID
		if _, err := acc.CreateMailbox(t.Context(), "Old/Sent", mailstore.SpecialSent); err != nil {
			t.Fatal(err)
		}
		if err := acc.RenameMailbox(t.Context(), "Old", "Older"); err != nil {
			t.Fatal(err)
		}
		if err := acc.SetSubscribed(t.Context(), "Ghost", true); err != nil {
			t.Fatal(err)
		}
		if _, err := acc.Copy(t.Context(), in.ID, imap.UIDSetNum(1), "Older/Sent"); err != nil {
			t.Fatal(err)
		}
		observeBefore, err := acc.ListMailboxes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := acc.DeleteMailbox(t.Context(), "Junk"); err != nil {
			t.Fatal(err)
		}
		// A POP3 session that never ends: its lock dies with the process.
		if _, err := acc.LockMaildrop(t.Context()); err != nil {
			t.Fatal(err)
		}
		before := observe(t, acc)
		acc.Close()

		f.reopen(t)
		acc = f.open(t, alice)
		compareStates(t, observe(t, acc), before)
		unlock, err := acc.LockMaildrop(t.Context())
		if err != nil {
			t.Errorf("LockMaildrop after a restart: %v; a lock must not outlive its Store", err)
		} else {
			unlock()
		}
		// UIDs and modseqs go on from where they were; the expunged UID
		// 3 is not given again.
		if res := deliver(t, acc, message("after restart", "x")); res.UID != 4 || res.UIDValidity != in.UIDValidity {
			t.Errorf("first delivery after the restart = %+v, want UID 4 under UIDVALIDITY %d", res, in.UIDValidity)
		}
		if st := status(t, acc, in.ID); st.HighestModSeq <= before.status[in.ID].HighestModSeq {
			t.Errorf("modseq %d after a change, was %d before the restart", st.HighestModSeq, before.status[in.ID].HighestModSeq)
		}
		// A re-created mailbox still gets a new UIDVALIDITY.
		junk := create(t, acc, "Junk")
		for _, mb := range before.mailboxes {
			if mb.ID == junk.ID {
				t.Errorf("re-created Junk reuses the ID of %+v", mb)
			}
		}
		for _, mb := range observeBefore {
			if mb.Name == "Junk" && junk.UIDValidity <= mb.UIDValidity {
				t.Errorf("re-created Junk has UIDVALIDITY %d, the deleted one had %d", junk.UIDValidity, mb.UIDValidity)
			}
		}
		checkUsage(t, acc)
	})

	t.Run("RemoveIsFinal", func(t *testing.T) {
		needReopen(t, b)
		f, acc := newAccount(t, b)
		deliver(t, acc, message("gone", "x"))
		keep := f.open(t, bob)
		deliver(t, keep, message("kept", "x"))
		bobBefore := observe(t, keep)
		if err := f.store.Remove(t.Context(), alice); err != nil {
			t.Fatal(err)
		}
		keep.Close()
		f.reopen(t)
		acc = f.open(t, alice)
		if got := mailboxNames(t, acc); !slices.Equal(got, defaultNames()) {
			t.Errorf("removed account after restart: mailboxes %v", got)
		}
		if used, _, _ := acc.Usage(t.Context()); used != 0 {
			t.Errorf("removed account after restart uses %d bytes", used)
		}
		compareStates(t, observe(t, f.open(t, bob)), bobBefore)
	})
}
