package imapd

import (
	"strings"
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

// TestStoreFlagsNotFollowedByStaleFlags: a FLAGS update queued for a
// session by another session's new keyword is superseded when the
// session's own STORE announces a newer list; written after it, the older
// list would drop the session's own new keyword (imaptest's stress mode
// reported "Keyword dropped, but it still had references").
func TestStoreFlagsNotFollowedByStaleFlags(t *testing.T) {
	ts := newTestServer(t)
	a, b := ts.aliceTwice(t, 2)
	b.mustOK(`STORE 1 +FLAGS ($Other)`)
	// a has not heard of $Other yet; its own STORE brings $Mine.
	lines := a.mustOK(`STORE 2 +FLAGS ($Mine)`)
	lines = append(lines, a.mustOK("NOOP")...)
	announced := false
	for _, l := range lines {
		if !strings.HasPrefix(l, "* FLAGS ") {
			continue
		}
		has := strings.Contains(l, "$Mine")
		if announced && !has {
			t.Errorf("FLAGS without $Mine after it was announced: %q", lines)
		}
		if has {
			announced = true
			if !strings.Contains(l, "$Other") {
				t.Errorf("FLAGS announcing $Mine lacks $Other, in use: %q", l)
			}
		}
	}
	if !announced {
		t.Errorf("$Mine never announced: %q", lines)
	}
}
