package storetest

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

func claimRecent(t *testing.T, acc mailstore.Account, id int64, upTo imap.UID) imap.UID {
	t.Helper()
	from, err := acc.ClaimRecent(t.Context(), id, upTo)
	if err != nil {
		t.Fatalf("ClaimRecent(%d, %d): %v", id, upTo, err)
	}
	return from
}

// checkRecent checks Status's view of the claim point.
func checkRecent(t *testing.T, acc mailstore.Account, id int64, what string, recentUID imap.UID, recent uint32) {
	t.Helper()
	if st := status(t, acc, id); st.RecentUID != recentUID || st.Recent != recent {
		t.Errorf("%s: Status RecentUID %d Recent %d, want %d and %d", what, st.RecentUID, st.Recent, recentUID, recent)
	}
}

// testRecent covers ClaimRecent and Status's Recent and RecentUID, which
// imapd builds IMAP4rev1's \Recent on (RFC 3501 §2.3.2).
func testRecent(t *testing.T, b Backend) {
	t.Run("ClaimOnce", func(t *testing.T) {
		f, acc, in := newInbox(t, b)
		other := f.open(t, alice)
		checkRecent(t, acc, in.ID, "new INBOX", 1, 0)
		deliverN(t, acc, 3, message("m", "x"))
		appendMsg(t, acc, mailstore.Inbox, message("appended", "x"), mailstore.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
		checkRecent(t, acc, in.ID, "after 4 arrivals", 1, 4)
		rec, _ := watch(t, acc)
		modseq := status(t, acc, in.ID).HighestModSeq

		if from := claimRecent(t, acc, in.ID, 3); from != 1 {
			t.Errorf("first claim up to 3 = %d, want 1", from)
		}
		checkRecent(t, other, in.ID, "after claiming 1:2 (seen through another handle)", 3, 2)
		if from := claimRecent(t, other, in.ID, 2); from != 3 {
			t.Errorf("claim up to 2 after 3 = %d, want 3 (nothing claimed)", from)
		}
		if from := claimRecent(t, other, in.ID, 3); from != 3 {
			t.Errorf("claim up to 3 again = %d, want 3 (nothing claimed)", from)
		}
		checkRecent(t, acc, in.ID, "after claims that claim nothing", 3, 2)
		if from := claimRecent(t, other, in.ID, 5); from != 3 {
			t.Errorf("claim up to UIDNEXT = %d, want 3", from)
		}
		checkRecent(t, acc, in.ID, "after claiming all", 5, 0)
		if st := status(t, acc, in.ID); st.HighestModSeq != modseq {
			t.Errorf("claims changed HIGHESTMODSEQ from %d to %d", modseq, st.HighestModSeq)
		}
		if n := len(rec.all()); n != 0 {
			t.Errorf("claims caused %d events, want none", n)
		}

		// Mail arriving after a claim is unclaimed; an expunged
		// unclaimed message leaves the count.
		deliverN(t, acc, 2, message("later", "x"))
		checkRecent(t, acc, in.ID, "after 2 more deliveries", 5, 2)
		storeFlags(t, acc, in.ID, imap.UIDSetNum(5), mailstore.FlagsAdd, imap.FlagDeleted)
		expunge(t, acc, in.ID, nil)
		checkRecent(t, acc, in.ID, "after expunging one of them", 5, 1)
		checkConsistent(t, acc, in.ID)
	})

	t.Run("AppendClaims", func(t *testing.T) {
		// AppendOptions.ClaimRecent claims the new message only when
		// every message before it is claimed; a backend may decline,
		// and then claims nothing.
		_, acc, in := newInbox(t, b)
		res := appendMsg(t, acc, mailstore.Inbox, message("first", "x"), mailstore.AppendOptions{ClaimRecent: true})
		if res.Recent {
			checkRecent(t, acc, in.ID, "after a claiming append into an empty mailbox", res.UID+1, 0)
			if from := claimRecent(t, acc, in.ID, res.UID+1); from != res.UID+1 {
				t.Errorf("claim after a claiming append = %d, want %d (the append claimed it)", from, res.UID+1)
			}
		} else {
			checkRecent(t, acc, in.ID, "after a declined claiming append", 1, 1)
			claimRecent(t, acc, in.ID, res.UID+1)
		}
		// An unclaimed delivery before it: the append claims nothing.
		deliverN(t, acc, 1, message("delivered", "x"))
		before := status(t, acc, in.ID).RecentUID
		res = appendMsg(t, acc, mailstore.Inbox, message("second", "x"), mailstore.AppendOptions{ClaimRecent: true})
		if res.Recent {
			t.Errorf("append after an unclaimed delivery claimed UID %d", res.UID)
		}
		checkRecent(t, acc, in.ID, "after an append behind an unclaimed delivery", before, 2)
		// Without the option nothing is claimed.
		claimRecent(t, acc, in.ID, res.UID+1)
		res = appendMsg(t, acc, mailstore.Inbox, message("third", "x"), mailstore.AppendOptions{})
		if res.Recent {
			t.Errorf("append without ClaimRecent claimed UID %d", res.UID)
		}
		checkRecent(t, acc, in.ID, "after a plain append", res.UID, 1)
		checkConsistent(t, acc, in.ID)
	})

	t.Run("EveryArrival", func(t *testing.T) {
		_, acc, in := newInbox(t, b)
		deliverN(t, acc, 3, message("m", "x"))
		claimRecent(t, acc, in.ID, 4)
		dest := create(t, acc, "Dest")
		checkRecent(t, acc, dest.ID, "new mailbox", 1, 0)
		if _, err := acc.Copy(t.Context(), in.ID, imap.UIDSetNum(1), "Dest"); err != nil {
			t.Fatal(err)
		}
		if _, err := acc.Move(t.Context(), in.ID, imap.UIDSetNum(2, 3), "Dest"); err != nil {
			t.Fatal(err)
		}
		appendMsg(t, acc, "Dest", message("appended", "x"), mailstore.AppendOptions{})
		if _, err := acc.Deliver(t.Context(), strings.NewReader(message("delivered", "x")), mailstore.DeliverOptions{Mailbox: "Dest"}); err != nil {
			t.Fatal(err)
		}
		checkRecent(t, acc, dest.ID, "after copy, move, append and deliver", 1, 5)
		checkRecent(t, acc, in.ID, "source after the move", 4, 0)
		// A mailbox deleted and created again starts over.
		if err := acc.DeleteMailbox(t.Context(), "Dest"); err != nil {
			t.Fatal(err)
		}
		again := create(t, acc, "Dest")
		checkRecent(t, acc, again.ID, "re-created mailbox", 1, 0)
		checkUsage(t, acc)
	})

	t.Run("Racing", func(t *testing.T) {
		// Handles claim at once, each up to its own bound: every UID is
		// claimed by exactly one, and the claim point ends at the
		// highest bound.
		f, acc, in := newInbox(t, b)
		const n = 12
		deliverN(t, acc, n, message("m", "x"))
		handles := make([]mailstore.Account, n)
		for i := range handles {
			handles[i] = f.open(t, alice)
		}
		type claim struct{ from, upTo imap.UID }
		claims := make([]claim, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, h := range handles {
			wg.Add(1)
			go func() {
				defer wg.Done()
				upTo := imap.UID(i%4*3 + 2) // 2, 5, 8, 11, three times each
				from, err := h.ClaimRecent(t.Context(), in.ID, upTo)
				claims[i], errs[i] = claim{from, upTo}, err
			}()
		}
		wg.Wait()
		owner := map[imap.UID]int{}
		for i, c := range claims {
			if errs[i] != nil {
				t.Fatalf("ClaimRecent: %v", errs[i])
			}
			for uid := c.from; uid < c.upTo; uid++ {
				if j, ok := owner[uid]; ok {
					t.Errorf("UID %d claimed twice: %+v and %+v", uid, claims[j], c)
				}
				owner[uid] = i
			}
		}
		var got []imap.UID
		for uid := range owner {
			got = append(got, uid)
		}
		slices.Sort(got)
		if want := []imap.UID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}; !slices.Equal(got, want) {
			t.Errorf("claimed UIDs %v, want %v", got, want)
		}
		checkRecent(t, acc, in.ID, "after the race", 11, 2)
	})

	t.Run("Restart", func(t *testing.T) {
		needReopen(t, b)
		f, acc, in := newInbox(t, b)
		deliverN(t, acc, 3, message("m", "x"))
		claimRecent(t, acc, in.ID, 3)
		acc.Close()
		f.reopen(t)
		acc = f.open(t, alice)
		checkRecent(t, acc, in.ID, "after a restart", 3, 1)
		if from := claimRecent(t, acc, in.ID, 4); from != 3 {
			t.Errorf("claim after a restart = %d, want 3: a claim must survive", from)
		}
	})
}
