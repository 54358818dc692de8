package storetest

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// testReconcile covers the reconciliation contract: a message stored
// without an index entry (Backend.Plant) is indexed, never dropped, by
// Store.Reconcile, by Reconciler.ReconcileAccount and when a restarted
// store opens the account.
func testReconcile(t *testing.T, b Backend) {
	if b.Plant == nil {
		t.Skip("Backend.Plant not set")
	}
	planted := []string{
		message("planted one", "restored from a backup"),
		multipartMessage,
	}

	t.Run("Store", func(t *testing.T) {
		f := newFixture(t, b)
		type acct struct {
			acc    mailstore.Account
			inbox  int64
			before mailstore.Status
			raw    string
		}
		var accts []acct
		for i, name := range []string{alice, bob} {
			acc := f.open(t, name)
			in := mailbox(t, acc, mailstore.Inbox)
			deliver(t, acc, message("indexed", name))
			accts = append(accts, acct{acc, in.ID, status(t, acc, in.ID), planted[i]})
			b.Plant(t, f.store, name, in.ID, []byte(planted[i]))
		}
		if err := f.store.Reconcile(t.Context()); err != nil {
			t.Fatalf("Reconcile: %v", err)
		}
		for _, a := range accts {
			checkPlanted(t, a.acc, a.inbox, a.before, a.raw)
			checkUsage(t, a.acc)
		}
		// A second pass finds nothing to do.
		after := observe(t, accts[0].acc)
		if err := f.store.Reconcile(t.Context()); err != nil {
			t.Fatalf("second Reconcile: %v", err)
		}
		compareStates(t, observe(t, accts[0].acc), after)
	})

	t.Run("ReconcileAccount", func(t *testing.T) {
		f := newFixture(t, b)
		rc, ok := f.store.(Reconciler)
		if !ok {
			t.Skip("the Store is not a storetest.Reconciler")
		}
		acc := f.open(t, alice)
		in, arch := mailbox(t, acc, mailstore.Inbox), mailbox(t, acc, "Archive")
		deliverN(t, acc, 2, message("indexed", "x"))
		before := status(t, acc, in.ID)
		usedBefore, _, _ := acc.Usage(t.Context())
		b.Plant(t, f.store, alice, in.ID, []byte(planted[0]))
		b.Plant(t, f.store, alice, arch.ID, []byte(planted[1]))
		rec, _ := watch(t, acc)
		if err := rc.ReconcileAccount(t.Context(), alice); err != nil {
			t.Fatalf("ReconcileAccount: %v", err)
		}
		checkPlanted(t, acc, in.ID, before, planted[0])
		checkPlanted(t, acc, arch.ID, mailstore.Status{UIDNext: 1}, planted[1])
		if used, _, _ := acc.Usage(t.Context()); used != usedBefore+int64(len(planted[0])+len(planted[1])) {
			t.Errorf("Usage after reconciling = %d, want %d", used, usedBefore+int64(len(planted[0])+len(planted[1])))
		}
		// Sessions learn of the new messages like of any other.
		evs := rec.waitUntil(t, func(es []mailstore.Event) bool { return len(es) >= 2 })
		var appended []int64
		for _, e := range evs {
			if e.Kind == mailstore.EventAppend {
				appended = append(appended, e.MailboxID)
			}
		}
		slices.Sort(appended)
		want := []int64{in.ID, arch.ID}
		slices.Sort(want)
		if !slices.Equal(appended, want) {
			t.Errorf("reconciliation events %v, want an append in INBOX and in Archive", eventStrings(evs))
		}
		// A second pass finds nothing to do.
		after := observe(t, acc)
		if err := rc.ReconcileAccount(t.Context(), alice); err != nil {
			t.Fatalf("second ReconcileAccount: %v", err)
		}
		compareStates(t, observe(t, acc), after)
		checkUsage(t, acc)
	})

	t.Run("AtStartup", func(t *testing.T) {
		needReopen(t, b)
		f, acc := newAccount(t, b)
		in := mailbox(t, acc, mailstore.Inbox)
		deliver(t, acc, message("indexed", "x"))
		storeFlags(t, acc, in.ID, imap.UIDSetNum(1), mailstore.FlagsAdd, imap.FlagDeleted)
		expunge(t, acc, in.ID, nil) // the planted message must not take UID 1
		before := status(t, acc, in.ID)
		acc.Close()
		b.Plant(t, f.store, alice, in.ID, []byte(planted[0]))
		f.reopen(t)
		acc = f.open(t, alice)
		checkPlanted(t, acc, in.ID, before, planted[0])
		checkUsage(t, acc)
	})
}

// checkPlanted checks that a mailbox whose status was before holds the one
// planted message raw after its old messages, under a new UID, with its
// envelope cached.
func checkPlanted(t *testing.T, acc mailstore.Account, id int64, before mailstore.Status, raw string) {
	t.Helper()
	snap := snapshot(t, acc, id)
	if len(snap.Messages) != int(before.Messages)+1 {
		t.Fatalf("mailbox %d: %d messages after reconciling, want %d", id, len(snap.Messages), before.Messages+1)
	}
	m := snap.Messages[len(snap.Messages)-1]
	if m.UID < before.UIDNext || snap.UIDNext <= m.UID {
		t.Errorf("mailbox %d: planted message got UID %d; UIDNEXT was %d, is %d", id, m.UID, before.UIDNext, snap.UIDNext)
	}
	if snap.HighestModSeq <= before.HighestModSeq || m.ModSeq <= before.HighestModSeq {
		t.Errorf("mailbox %d: indexing took modseq %d (mailbox %d), was %d", id, m.ModSeq, snap.HighestModSeq, before.HighestModSeq)
	}
	if got := readMessage(t, acc, id, m.UID); got != raw {
		t.Errorf("mailbox %d: planted message reads %q, want %q", id, got, raw)
	}
	mi := fetchOne(t, acc, id, m.UID, mailstore.FetchOptions{Envelope: true, BodyStructure: true})
	if mi.Size != int64(len(raw)) || mi.Envelope == nil || mi.Envelope.Subject == "" || mi.BodyStructure == nil {
		t.Errorf("mailbox %d: planted message indexed as %+v", id, mi)
	}
	checkConsistent(t, acc, id)
}
