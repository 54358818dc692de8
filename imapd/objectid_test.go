package imapd

import (
	"regexp"
	"strings"
	"testing"
)

// TestObjectID: MAILBOXID from CREATE, SELECT, STATUS and LIST-STATUS,
// kept by RENAME and new after DELETE and CREATE; EMAILID kept by COPY and
// MOVE and found by SEARCH; THREADID NIL (RFC 8474).
func TestObjectID(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, "alice@example.org", "INBOX", testMessage(1))
	ts.deliver(t, "alice@example.org", "INBOX", testMessage(2))
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	if u := rc.mustOK("CAPABILITY"); !hasLine(u, " OBJECTID") {
		t.Errorf("OBJECTID not advertised: %q", u)
	}
	idRE := regexp.MustCompile(`MAILBOXID \(([A-Za-z0-9_-]+)\)`)
	idIn := func(what string, lines ...string) string {
		t.Helper()
		for _, l := range lines {
			if m := idRE.FindStringSubmatch(l); m != nil {
				return m[1]
			}
		}
		t.Fatalf("%s: no MAILBOXID in %q", what, lines)
		return ""
	}
	_, done := rc.cmd("CREATE foo")
	created := idIn("CREATE", done)
	if got := idIn("STATUS", rc.mustOK("STATUS foo (MESSAGES MAILBOXID)")...); got != created {
		t.Errorf("STATUS MAILBOXID %s, CREATE said %s", got, created)
	}
	rc.mustOK("RENAME foo bar")
	if got := idIn("STATUS after RENAME", rc.mustOK("STATUS bar (MAILBOXID)")...); got != created {
		t.Errorf("MAILBOXID after RENAME %s, want %s", got, created)
	}
	if got := idIn("LIST-STATUS", rc.mustOK(`LIST "" bar RETURN (STATUS (MAILBOXID))`)...); got != created {
		t.Errorf("LIST-STATUS MAILBOXID %s, want %s", got, created)
	}
	inbox := idIn("STATUS INBOX", rc.mustOK("STATUS INBOX (MAILBOXID)")...)
	if inbox == created {
		t.Errorf("INBOX and bar share MAILBOXID %s", inbox)
	}
	if got := idIn("SELECT", rc.mustOK("SELECT INBOX")...); got != inbox {
		t.Errorf("SELECT MAILBOXID %s, STATUS said %s", got, inbox)
	}

	emailRE := regexp.MustCompile(`\* 1 FETCH \(EMAILID \(([A-Za-z0-9_-]+)\) THREADID NIL\)`)
	emailID := func(what string) string {
		t.Helper()
		u := rc.mustOK("FETCH 1 (EMAILID THREADID)")
		if len(u) != 1 || emailRE.FindStringSubmatch(u[0]) == nil {
			t.Fatalf("%s: FETCH EMAILID THREADID: %q", what, u)
		}
		return emailRE.FindStringSubmatch(u[0])[1]
	}
	first := emailID("INBOX")
	if u := rc.mustOK("FETCH 2 EMAILID"); len(u) != 1 || strings.Contains(u[0], "("+first+")") {
		t.Errorf("message 2 shares message 1's EMAILID %s: %q", first, u)
	}
	if u := rc.mustOK("SEARCH EMAILID %s", first); !hasLine(u, "* SEARCH 1") || hasLine(u, "* SEARCH 1 2") {
		t.Errorf("SEARCH EMAILID: %q", u)
	}
	if u := rc.mustOK("SEARCH THREADID T1"); !hasLine(u, "* SEARCH") || hasLine(u, "* SEARCH 1") {
		t.Errorf("SEARCH THREADID: %q", u)
	}
	rc.mustOK("COPY 1 Archive")
	rc.mustOK("MOVE 1 bar")
	for _, mb := range []string{"Archive", "bar"} {
		rc.mustOK("SELECT %s", mb)
		if got := emailID(mb); got != first {
			t.Errorf("EMAILID in %s after COPY/MOVE %s, want %s", mb, got, first)
		}
	}
	rc.mustOK("UNSELECT")
	rc.mustOK("DELETE bar")
	_, done = rc.cmd("CREATE bar")
	if got := idIn("CREATE again", done); got == created {
		t.Errorf("a mailbox created again got the deleted one's MAILBOXID %s", got)
	}
}
