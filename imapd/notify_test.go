package imapd

import (
	"regexp"
	"strings"
	"testing"
)

// statusLines picks the STATUS responses out of untagged lines.
func statusLines(u []string) []string {
	var out []string
	for _, l := range u {
		if strings.HasPrefix(l, "* STATUS ") {
			out = append(out, l)
		}
	}
	return out
}

// TestNotify: NOTIFY SET STATUS sends each named mailbox's STATUS at once
// with the items its events call for; later events in other mailboxes
// become one STATUS per mailbox after a command and during IDLE, the
// selected mailbox keeps its usual updates, NOTIFY NONE stops them, and
// unsupported events get NO [BADEVENT] (RFC 5465).
func TestNotify(t *testing.T) {
	ts := newTestServer(t)
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	if u := rc.mustOK("CAPABILITY"); !hasLine(u, " NOTIFY") {
		t.Errorf("NOTIFY not advertised: %q", u)
	}
	rc.mustOK("CREATE other")
	ts.deliver(t, "alice@example.org", "other", testMessage(1))

	initial := regexp.MustCompile(`^\* STATUS "?other"? \((.*)\)$`)
	for _, tc := range []struct{ events, want string }{
		{"MessageExpunge", `^MESSAGES 1$`},
		{"MessageNew", `^MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+$`},
		{"FlagChange", `^UIDVALIDITY \d+ HIGHESTMODSEQ \d+$`},
	} {
		u := statusLines(rc.mustOK("NOTIFY SET STATUS (mailboxes other (%s))", tc.events))
		if len(u) != 1 || !initial.MatchString(u[0]) || !regexp.MustCompile(tc.want).MatchString(initial.FindStringSubmatch(u[0])[1]) {
			t.Errorf("NOTIFY SET STATUS with %s: %q, want items %s", tc.events, u, tc.want)
		}
	}
	if u := statusLines(rc.mustOK("NOTIFY SET (mailboxes other (MessageNew MessageExpunge FlagChange))")); len(u) != 0 {
		t.Errorf("NOTIFY SET without STATUS sent %q", u)
	}

	// Events of another mailbox after a command: several deliveries, one
	// STATUS; the selected mailbox gets EXISTS, not STATUS.
	rc.mustOK("SELECT INBOX")
	for i := 2; i <= 4; i++ {
		ts.deliver(t, "alice@example.org", "other", testMessage(i))
	}
	ts.deliver(t, "alice@example.org", "INBOX", testMessage(5))
	u := rc.mustOK("NOOP")
	if s := statusLines(u); len(s) != 1 || !strings.Contains(s[0], "MESSAGES 4 UIDNEXT 5") {
		t.Errorf("after deliveries to other: STATUS %q, want one with MESSAGES 4 UIDNEXT 5", s)
	}
	if !hasLine(u, "* 1 EXISTS") {
		t.Errorf("the selected INBOX's delivery: %q", u)
	}
	rc.mustOK(`STORE 1 +FLAGS (\Seen)`)
	if u := rc.mustOK("NOOP"); len(statusLines(u)) != 0 {
		t.Errorf("a change in the selected mailbox gave STATUS: %q", u)
	}

	// During IDLE.
	rc.send("I1 IDLE\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	ts.deliver(t, "alice@example.org", "other", testMessage(6))
	for l := rc.line(); !strings.HasPrefix(l, "* STATUS"); l = rc.line() {
		if !strings.HasSuffix(l, "RECENT") && !strings.HasSuffix(l, "EXISTS") {
			t.Fatalf("in IDLE: %q", l)
		}
	}
	rc.send("DONE\r\n")
	rc.until("I1")

	// PERSONAL covers every mailbox but the selected one.
	rc.mustOK("NOTIFY SET (personal (MessageNew MessageExpunge))")
	ts.deliver(t, "alice@example.org", "Archive", testMessage(7))
	ts.deliver(t, "alice@example.org", "INBOX", testMessage(8))
	u = statusLines(rc.mustOK("NOOP"))
	if len(u) != 1 || !strings.HasPrefix(u[0], `* STATUS "Archive" (MESSAGES 1 UIDNEXT 2 UIDVALIDITY `) {
		t.Errorf("PERSONAL: %q, want Archive's STATUS only", u)
	}

	rc.mustOK("NOTIFY NONE")
	ts.deliver(t, "alice@example.org", "other", testMessage(9))
	if u := rc.mustOK("NOOP"); len(statusLines(u)) != 0 {
		t.Errorf("STATUS after NOTIFY NONE: %q", u)
	}

	for _, tc := range []struct{ cmd, want string }{
		{"NOTIFY SET (personal (MailboxName))", "NO [BADEVENT"},
		{"NOTIFY SET (personal (NoSuchEvent))", "NO [BADEVENT"},
		{"NOTIFY SET (bogus (MessageNew))", "BAD"},
		{"NOTIFY SET STATUS", "BAD"},
		{"NOTIFY FOO", "BAD"},
		{"NOTIFY SET (mailboxes (a b) (MessageNew (UID FLAGS)))", "OK"},
		{"NOTIFY SET (selected (MessageNew MessageExpunge)) (subtree INBOX NONE)", "OK"},
	} {
		if _, d := rc.cmd("%s", tc.cmd); !strings.HasPrefix(d, tc.want) {
			t.Errorf("%s: %q, want %s", tc.cmd, d, tc.want)
		}
	}
}
