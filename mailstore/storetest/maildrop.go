package storetest

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// testMaildrop covers LockMaildrop and the POP3 view of INBOX that pop3d
// builds from Mailbox, Snapshot, Fetch, OpenMessage, StoreFlags and
// Expunge.
func testMaildrop(t *testing.T, b Backend) {
	t.Run("Exclusive", func(t *testing.T) {
		f := newFixture(t, b)
		a1, a2 := f.open(t, alice), f.open(t, alice)
		unlock, err := a1.LockMaildrop(t.Context())
		if err != nil {
			t.Fatalf("LockMaildrop: %v", err)
		}
		_, err = a2.LockMaildrop(t.Context())
		wantErr(t, "second lock from another handle", err, mailstore.ErrInUse)
		_, err = a1.LockMaildrop(t.Context())
		wantErr(t, "second lock from the same handle", err, mailstore.ErrInUse)
		// The lock is the account's: another account locks freely.
		unlockBob, err := f.open(t, bob).LockMaildrop(t.Context())
		if err != nil {
			t.Fatalf("another account's lock: %v", err)
		}
		unlockBob()
		// Delivery and IMAP are not blocked by it.
		res := deliver(t, a2, message("while locked", "x"))
		storeFlags(t, a2, res.MailboxID, imap.UIDSetNum(res.UID), mailstore.FlagsAdd, imap.FlagSeen)
		unlock()
		unlock() // a second unlock is harmless and frees nothing else
		unlock2, err := a2.LockMaildrop(t.Context())
		if err != nil {
			t.Fatalf("lock after unlock: %v", err)
		}
		unlock()
		if _, err := a1.LockMaildrop(t.Context()); !errors.Is(err, mailstore.ErrInUse) {
			t.Errorf("the first unlock, called again, freed the second session's lock: %v", err)
		}
		unlock2()
	})

	t.Run("Race", func(t *testing.T) {
		f := newFixture(t, b)
		const n = 8
		handles := make([]mailstore.Account, n)
		for i := range handles {
			handles[i] = f.open(t, alice)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []func()
		var errs []error
		for _, h := range handles {
			wg.Go(func() {
				unlock, err := h.LockMaildrop(t.Context())
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					won = append(won, unlock)
				} else if !errors.Is(err, mailstore.ErrInUse) {
					errs = append(errs, err)
				}
			})
		}
		wg.Wait()
		if len(won) != 1 || len(errs) != 0 {
			t.Fatalf("%d of %d concurrent lockers won (errors %v), want exactly 1", len(won), n, errs)
		}
		won[0]()
	})

	t.Run("View", func(t *testing.T) {
		_, acc := newAccount(t, b)
		var sizes []int64
		for i := range 4 {
			msg := message("pop", strings.Repeat("line\r\n", i*10))
			deliver(t, acc, msg)
			sizes = append(sizes, int64(len(msg)))
		}
		appendMsg(t, acc, "Archive", message("not in the maildrop", "x"), mailstore.AppendOptions{})
		// A POP3 session: lock, snapshot INBOX, sizes from Fetch.
		unlock, err := acc.LockMaildrop(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		in := mailbox(t, acc, mailstore.Inbox)
		snap := snapshot(t, acc, in.ID)
		if snap.Mailbox.UIDValidity != in.UIDValidity || !slices.Equal(snapUIDs(snap), []imap.UID{1, 2, 3, 4}) {
			t.Fatalf("maildrop snapshot %+v", snap)
		}
		infos := fetch(t, acc, in.ID, allUIDs, mailstore.FetchOptions{})
		for i, mi := range infos {
			if mi.Size != sizes[i] || int64(len(readMessage(t, acc, in.ID, mi.UID))) != sizes[i] {
				t.Errorf("message %d: LIST size %d, want the bytes RETR sends, %d", i+1, mi.Size, sizes[i])
			}
		}
		// Meanwhile IMAP expunges one and a message arrives: the session's
		// UIDs stay valid handles (RETR of the expunged one fails cleanly).
		storeFlags(t, acc, in.ID, imap.UIDSetNum(2), mailstore.FlagsAdd, imap.FlagDeleted)
		expunge(t, acc, in.ID, nil)
		deliver(t, acc, message("late", "x"))
		_, _, err = acc.OpenMessage(t.Context(), in.ID, 2)
		wantErr(t, "RETR of a message expunged during the session", err, mailstore.ErrNoSuchMessage)
		// QUIT: \Seen on retrieved ones, DELE'd ones flagged and
		// expunged by UID, which leaves others' \Deleted alone.
		storeFlags(t, acc, in.ID, imap.UIDSetNum(5), mailstore.FlagsAdd, imap.FlagDeleted) // another client's
		storeFlags(t, acc, in.ID, imap.UIDSetNum(1, 3), mailstore.FlagsAdd, imap.FlagSeen)
		dele := imap.UIDSetNum(2, 4) // 2 is already gone
		storeFlags(t, acc, in.ID, dele, mailstore.FlagsAdd, imap.FlagDeleted)
		if gone := expunge(t, acc, in.ID, &dele); !slices.Equal(gone, []imap.UID{4}) {
			t.Errorf("UPDATE state expunged %v, want [4]", gone)
		}
		unlock()
		if got := snapUIDs(snapshot(t, acc, in.ID)); !slices.Equal(got, []imap.UID{1, 3, 5}) {
			t.Errorf("INBOX after the session: %v, want [1 3 5]", got)
		}
		checkUsage(t, acc)
	})
}
