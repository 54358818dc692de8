package imapd

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/mailstore"
)

// TestSelectJoinCatchesUp: a SELECT joining a mailbox state that another
// session holds sees everything the store had committed. A change whose
// event arrives late (another node sharing the store) is waited for and
// the state is shared still; one whose event never comes (another
// process) has the SELECT load a fresh state, and the old one closes with
// its last session.
func TestSelectJoinCatchesUp(t *testing.T) {
	dir, ts, a, st := selectedInbox(t)
	reg := ts.srv.states
	deliverElsewhere := func(i int) mailstore.Event {
		var ev mailstore.Event
		inOtherProcess(t, dir, "alice@example.org", func(acct mailstore.Account) {
			ctx := context.Background()
			res, err := acct.Deliver(ctx, strings.NewReader(testMessage(i)), mailstore.DeliverOptions{})
			if err != nil {
				t.Fatal(err)
			}
			status, err := acct.Status(ctx, res.MailboxID)
			if err != nil {
				t.Fatal(err)
			}
			ev = mailstore.Event{Kind: mailstore.EventAppend, MailboxID: res.MailboxID, UID: res.UID, ModSeq: status.HighestModSeq}
		})
		return ev
	}

	t.Run("late event", func(t *testing.T) {
		old := catchUpWait
		catchUpWait = time.Minute // only the event ends the wait
		t.Cleanup(func() { catchUpWait = old })
		ev := deliverElsewhere(3)
		go func() {
			time.Sleep(20 * time.Millisecond)
			st.onEvent(ev)
		}()
		b := ts.aliceSelects(t, 4, "SELECT after a change elsewhere")
		if reg.only(t) != st {
			t.Fatal("the state that caught up was not shared")
		}
		if u := a.mustOK("NOOP"); !hasLine(u, "* 4 EXISTS") {
			t.Fatalf("the first session was not told: %q", u)
		}
		b.mustOK("LOGOUT")
	})

	t.Run("no event", func(t *testing.T) {
		deliverElsewhere(4)
		b := ts.aliceSelects(t, 5, "SELECT after another process delivered")
		fresh := reg.only(t)
		if fresh == st {
			t.Fatal("the state behind the store was shared")
		}
		if u := b.mustOK("UID FETCH 1:* (FLAGS)"); len(u) != 5 {
			t.Fatalf("FETCH: %q", u)
		}
		// The old state stays with the session that has it, until it
		// leaves.
		a.mustOK("UNSELECT")
		if reg.only(t) != fresh {
			t.Fatal("the first session's leaving dropped the fresh state")
		}
		if st.acct.Close() == nil {
			t.Fatal("the old state's handle is still open after its last session left")
		}
		if u := a.mustOK("SELECT INBOX"); !hasLine(u, "* 5 EXISTS") {
			t.Fatalf("SELECT again: %q", u)
		}
		if reg.only(t) != fresh {
			t.Fatal("the fresh state was not shared")
		}
	})
}

// TestSelectJoinAfterRename: RENAME raises the mailbox's HIGHESTMODSEQ
// without changing a message; the state others have selected follows it,
// so a SELECT of the new name joins that state at once and reports the
// store's HIGHESTMODSEQ.
func TestSelectJoinAfterRename(t *testing.T) {
	ts := newTestServer(t)
	a, b := ts.aliceTwice(t, 1)
	b.mustOK("UNSELECT")
	a.mustOK("CREATE Work")
	a.mustOK("COPY 1 Work")
	a.mustOK("SELECT Work")
	st := ts.srv.states.only(t)
	b.mustOK("RENAME Work Play")
	status := b.mustOK("STATUS Play (HIGHESTMODSEQ)")
	u := b.mustOK("SELECT Play")
	if !hasLine(u, "* 1 EXISTS") {
		t.Fatalf("SELECT after RENAME: %q", u)
	}
	if ts.srv.states.only(t) != st {
		t.Fatal("the state was loaded again after the RENAME")
	}
	want := strings.TrimSuffix(strings.SplitN(status[0], "HIGHESTMODSEQ ", 2)[1], ")")
	if !hasLine(u, "* OK [HIGHESTMODSEQ "+want+"] Highest") {
		t.Fatalf("SELECT after RENAME: %q, STATUS said %q", u, status)
	}
}
