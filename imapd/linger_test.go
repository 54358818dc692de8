package imapd

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/mailstore"
)

// lingering reports how many mailbox states linger and whether st is one.
func (r *stateRegistry) lingering(st *mailboxState) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.idle), st != nil && r.m[st.key] == st && st.refs == 0
}

func (r *stateRegistry) only(t *testing.T) *mailboxState {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.m) != 1 {
		t.Fatalf("%d mailbox states, want 1", len(r.m))
	}
	for _, st := range r.m {
		return st
	}
	return nil
}

// selectedInbox starts a server on a store in dir (see inOtherProcess),
// delivers 3 messages to alice's INBOX and has one session select it; it
// returns that session and the mailbox's state.
func selectedInbox(t *testing.T) (dir string, ts *testServer, a *rawConn, st *mailboxState) {
	t.Helper()
	dir = t.TempDir()
	storeInDir(t, dir)
	ts = newTestServer(t)
	for i := range 3 {
		ts.deliver(t, "alice@example.org", "INBOX", testMessage(i))
	}
	a = ts.aliceSelects(t, 3, "SELECT")
	return dir, ts, a, ts.srv.states.only(t)
}

// aliceSelects opens a session as alice that selects INBOX, and fails the
// test (what is failed) unless it shows exists messages.
func (ts *testServer) aliceSelects(t *testing.T, exists int, what string) *rawConn {
	t.Helper()
	c := ts.raw(t)
	c.login("alice@example.org", "alicepw")
	if u := c.mustOK("SELECT INBOX"); !hasLine(u, fmt.Sprintf("* %d EXISTS", exists)) {
		t.Fatalf("%s: %q", what, u)
	}
	return c
}

// TestStateLingers: a large mailbox's state outlives its last session, is
// kept current by events meanwhile, is joined by the next SELECT, and is
// dropped and reloaded when another process changed the mailbox.
func TestStateLingers(t *testing.T) {
	old := lingerMin
	lingerMin = 2
	t.Cleanup(func() { lingerMin = old })
	dir, ts, a, st := selectedInbox(t)
	reg := ts.srv.states
	a.mustOK("UNSELECT")
	if n, ok := reg.lingering(st); n != 1 || !ok {
		t.Fatalf("after the last session left: %d lingering, this one %v", n, ok)
	}

	// A delivery while nobody has the mailbox selected reaches the state.
	ts.deliver(t, "alice@example.org", "INBOX", testMessage(3))
	b := ts.aliceSelects(t, 4, "SELECT after a delivery")
	if reg.only(t) != st {
		t.Fatal("the lingering state was not reused")
	}
	if n, _ := reg.lingering(nil); n != 0 {
		t.Fatalf("%d states still lingering while selected", n)
	}
	if u := b.mustOK("UID FETCH 1:* (FLAGS)"); len(u) != 4 {
		t.Fatalf("FETCH: %q", u)
	}
	b.mustOK("UNSELECT")

	// Another process (here a second store on the same directory, whose
	// events this server never sees) delivers: the state is stale.
	inOtherProcess(t, dir, "alice@example.org", func(acct mailstore.Account) {
		if _, err := acct.Deliver(context.Background(), strings.NewReader(testMessage(4)), mailstore.DeliverOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if u := b.mustOK("SELECT INBOX"); !hasLine(u, "* 5 EXISTS") {
		t.Fatalf("SELECT after another process delivered: %q", u)
	}
	if reg.only(t) == st {
		t.Fatal("a stale state was reused")
	}
	if u := b.mustOK("UID FETCH 1:* (FLAGS)"); len(u) != 5 {
		t.Fatalf("FETCH: %q", u)
	}

	// Shutdown drops lingering states (the store closes after it).
	b.mustOK("UNSELECT")
	reg.closeIdle()
	if n, _ := reg.lingering(nil); n != 0 || len(reg.m) != 0 {
		t.Fatalf("after closeIdle: %d lingering, %d states", n, len(reg.m))
	}
}
