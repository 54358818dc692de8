package imapd

import (
	"slices"
	"strings"
	"testing"
)

// recentLines returns the RECENT responses among lines.
func recentLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasSuffix(l, " RECENT") {
			out = append(out, l)
		}
	}
	return out
}

// TestRecent checks IMAP4rev1's \Recent (RFC 3501 §2.3.2): a message is
// recent in the one session first told of it with a read-write selection.
func TestRecent(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, "alice@example.org", "", testMessage(1))
	ts.deliver(t, "alice@example.org", "", testMessage(2))
	a, b := ts.raw(t), ts.raw(t)
	a.login("alice@example.org", "alicepw")
	b.login("alice@example.org", "alicepw")

	// EXAMINE and STATUS report the unclaimed messages and claim nothing.
	u := a.mustOK("EXAMINE INBOX")
	if got := recentLines(u); !slices.Equal(got, []string{"* 2 RECENT"}) {
		t.Errorf("EXAMINE: RECENT %q in %q", got, u)
	}
	if u := a.mustOK("FETCH 1 FLAGS"); !hasLine(u, `* 1 FETCH (FLAGS (\Recent))`) {
		t.Errorf("FETCH FLAGS after EXAMINE: %q", u)
	}
	a.mustOK("CLOSE")
	if u := b.mustOK("STATUS INBOX (RECENT)"); !hasLine(u, "(RECENT 2)") {
		t.Errorf("STATUS after EXAMINE: %q", u)
	}

	// The first SELECT claims them; a second sees none.
	u = a.mustOK("SELECT INBOX")
	if got := recentLines(u); !slices.Equal(got, []string{"* 2 RECENT"}) {
		t.Errorf("first SELECT: RECENT %q in %q", got, u)
	}
	u = b.mustOK("SELECT INBOX")
	if got := recentLines(u); !slices.Equal(got, []string{"* 0 RECENT"}) {
		t.Errorf("second SELECT: RECENT %q in %q", got, u)
	}
	if u := b.mustOK("STATUS INBOX (RECENT)"); !hasLine(u, "(RECENT 0)") {
		t.Errorf("STATUS after SELECT: %q", u)
	}

	// A delivery goes to the first session told of it: EXISTS, then
	// RECENT counting every message recent there.
	ts.deliver(t, "alice@example.org", "", testMessage(3))
	if u := a.mustOK("NOOP"); !slices.Equal(u, []string{"* 3 EXISTS", "* 3 RECENT"}) {
		t.Errorf("NOOP after delivery, first session: %q", u)
	}
	if u := b.mustOK("NOOP"); !slices.Equal(u, []string{"* 3 EXISTS", "* 0 RECENT"}) {
		t.Errorf("NOOP after delivery, second session: %q", u)
	}
	if u := a.mustOK("FETCH 3 FLAGS"); !slices.Equal(u, []string{`* 3 FETCH (FLAGS (\Recent))`}) {
		t.Errorf("first session FETCH FLAGS: %q", u)
	}
	if u := b.mustOK("FETCH 3 FLAGS"); !slices.Equal(u, []string{`* 3 FETCH (FLAGS ())`}) {
		t.Errorf("second session FETCH FLAGS: %q", u)
	}

	// STORE answers with this session's \Recent; the other session's
	// unilateral FETCH carries its own.
	if u := b.mustOK(`STORE 3 +FLAGS (\Flagged \Recent)`); !slices.Equal(u, []string{`* 3 FETCH (FLAGS (\Flagged))`}) {
		t.Errorf("STORE in the second session: %q", u)
	}
	if u := a.mustOK("NOOP"); !slices.Equal(u, []string{`* 3 FETCH (UID 3 FLAGS (\Recent \Flagged))`}) {
		t.Errorf("first session after the other's STORE: %q", u)
	}
	if u := a.mustOK(`STORE 1 +FLAGS (\Seen)`); !slices.Equal(u, []string{`* 1 FETCH (FLAGS (\Recent \Seen))`}) {
		t.Errorf("STORE in the first session: %q", u)
	}
	b.mustOK("NOOP")

	// SEARCH RECENT, NEW (recent and unseen) and OLD (not recent).
	for _, tc := range []struct {
		name  string
		rc    *rawConn
		query string
		want  string
	}{
		{"recent", a, "SEARCH RECENT", "* SEARCH 1 2 3"},
		{"new", a, "SEARCH NEW", "* SEARCH 2 3"},
		{"old", a, "SEARCH OLD", "* SEARCH"},
		{"not recent", a, "SEARCH NOT RECENT", "* SEARCH"},
		{"or recent", a, "SEARCH OR RECENT FLAGGED", "* SEARCH 1 2 3"},
		{"uid recent", a, "UID SEARCH RECENT 2:3", "* SEARCH 2 3"},
		{"other recent", b, "SEARCH RECENT", "* SEARCH"},
		{"other new", b, "SEARCH NEW", "* SEARCH"},
		{"other old", b, "SEARCH OLD", "* SEARCH 1 2 3"},
		{"other not old", b, "SEARCH NOT OLD", "* SEARCH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if u := tc.rc.mustOK("%s", tc.query); !slices.Equal(u, []string{tc.want}) {
				t.Errorf("%s: %q, want %q", tc.query, u, tc.want)
			}
		})
	}

	// COPY into a mailbox another session has selected: that session is
	// told of the copies (one EXISTS each) and claims them.
	b.mustOK("SELECT Archive")
	a.mustOK("COPY 1:2 Archive")
	if u := b.mustOK("NOOP"); !slices.Equal(u, []string{"* 1 EXISTS", "* 2 EXISTS", "* 2 RECENT"}) {
		t.Errorf("NOOP after a COPY into the selected mailbox: %q", u)
	}
	if u := b.mustOK("FETCH 1:2 FLAGS"); !slices.Equal(u, []string{`* 1 FETCH (FLAGS (\Recent \Seen))`, `* 2 FETCH (FLAGS (\Recent))`}) {
		t.Errorf("FETCH FLAGS of the copies: %q", u)
	}
	// An APPEND into the session's own mailbox is recent in it.
	if u := b.mustOK("APPEND Archive {1+}\r\nx"); !slices.Equal(u, []string{"* 3 EXISTS", "* 3 RECENT"}) {
		t.Errorf("APPEND into the selected mailbox: %q", u)
	}
	// The append claimed it in the store (no other session gets it).
	if u := a.mustOK("STATUS Archive (RECENT)"); !hasLine(u, "(RECENT 0)") {
		t.Errorf("STATUS of the mailbox after the APPEND: %q", u)
	}
	// Behind a delivery not yet claimed, the append claims nothing
	// itself; the session's poll claims both.
	ts.deliver(t, "alice@example.org", "Archive", testMessage(4))
	if u := b.mustOK("APPEND Archive {1+}\r\ny"); !slices.Equal(u, []string{"* 4 EXISTS", "* 5 EXISTS", "* 5 RECENT"}) {
		t.Errorf("APPEND behind an unclaimed delivery: %q", u)
	}
	if u := b.mustOK("UID SEARCH RECENT"); !slices.Equal(u, []string{"* SEARCH 1 2 3 4 5"}) {
		t.Errorf("UID SEARCH RECENT after both: %q", u)
	}
	if u := a.mustOK("STATUS Archive (RECENT)"); !hasLine(u, "(RECENT 0)") {
		t.Errorf("STATUS of the mailbox after the second APPEND: %q", u)
	}
}

// TestRecentIMAP4rev2: after ENABLE IMAP4rev2 there is no \Recent (RFC 9051
// §2.3.2): no RECENT response, no \Recent flag, and nothing claimed, so
// an IMAP4rev1 session still gets the messages as recent.
func TestRecentIMAP4rev2(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, "alice@example.org", "", testMessage(1))
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	rc.mustOK("ENABLE IMAP4rev2")
	if u := rc.mustOK("SELECT INBOX"); len(recentLines(u)) != 0 {
		t.Errorf("SELECT after ENABLE IMAP4rev2: %q", u)
	}
	ts.deliver(t, "alice@example.org", "", testMessage(2))
	if u := rc.mustOK("NOOP"); !slices.Equal(u, []string{"* 2 EXISTS"}) {
		t.Errorf("NOOP after delivery: %q", u)
	}
	if u := rc.mustOK("FETCH 1:2 FLAGS"); !slices.Equal(u, []string{`* 1 FETCH (FLAGS ())`, `* 2 FETCH (FLAGS ())`}) {
		t.Errorf("FETCH FLAGS: %q", u)
	}

	old := ts.raw(t)
	old.login("alice@example.org", "alicepw")
	if u := old.mustOK("SELECT INBOX"); !slices.Equal(recentLines(u), []string{"* 2 RECENT"}) {
		t.Errorf("IMAP4rev1 SELECT after an IMAP4rev2 session: %q", u)
	}
}
