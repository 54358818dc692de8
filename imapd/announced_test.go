package imapd

import (
	"testing"
)

// TestFlagsKeepsKeywords: once FLAGS announced a keyword, a later SELECT
// of the mailbox lists it too, even after the last message with it lost
// it and the mailbox's state was dropped and loaded again: a client still
// holding a message with the keyword (not told yet of the change) takes a
// FLAGS without it for an error.
func TestFlagsKeepsKeywords(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, "alice@example.org", "", testMessage(1))
	a := ts.raw(t)
	a.login("alice@example.org", "alicepw")
	a.mustOK("SELECT INBOX")
	if u := a.mustOK(`STORE 1 +FLAGS ($Label1)`); !hasLine(u, "* FLAGS (") || !hasLine(u, "$Label1") {
		t.Fatalf("STORE: %q", u)
	}
	a.mustOK(`STORE 1 -FLAGS ($Label1)`)
	a.mustOK("UNSELECT")
	u := a.mustOK("SELECT INBOX")
	found := false
	for _, l := range u {
		if len(l) > 8 && l[:8] == "* FLAGS " && hasLine([]string{l}, "$Label1") {
			found = true
		}
	}
	if !found {
		t.Errorf("SELECT's FLAGS lost $Label1: %q", u)
	}
}
