package imapd

import (
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

var (
	highestModSeqRE = regexp.MustCompile(`\[HIGHESTMODSEQ (\d+)\]`)
	uidValidityRE   = regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`)
	modSeqRE        = regexp.MustCompile(`MODSEQ \(?(\d+)\)?`)
)

// capture returns the number the first line matching re holds.
func capture(t *testing.T, lines []string, re *regexp.Regexp) uint64 {
	t.Helper()
	for _, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 64)
			return n
		}
	}
	t.Fatalf("no %v in %q", re, lines)
	return 0
}

// TestCondStore checks CONDSTORE (RFC 7162 §3.1) over raw commands: each
// enabling command, MODSEQ in FETCH, STORE and unilateral FETCH,
// CHANGEDSINCE, UNCHANGEDSINCE with MODIFIED, SEARCH MODSEQ, STATUS.
func TestCondStore(t *testing.T) {
	ts := newTestServer(t)
	for i := 1; i <= 3; i++ {
		ts.deliver(t, "alice@example.org", "", testMessage(i))
	}
	a, b := ts.raw(t), ts.raw(t)
	a.login("alice@example.org", "alicepw")
	b.login("alice@example.org", "alicepw")
	if u := a.mustOK("CAPABILITY"); !hasLine(u, " CONDSTORE") || !hasLine(u, " QRESYNC") {
		t.Errorf("CAPABILITY: %q", u)
	}
	if u := a.mustOK("STATUS INBOX (MESSAGES HIGHESTMODSEQ)"); !hasLine(u, "(MESSAGES 3 HIGHESTMODSEQ ") {
		t.Errorf("STATUS: %q", u)
	}
	h0 := capture(t, a.mustOK("SELECT INBOX"), highestModSeqRE)

	// Not enabled by STATUS of this session? It is: STATUS HIGHESTMODSEQ
	// enables CONDSTORE, so FETCH FLAGS shows MODSEQ. b enables nothing.
	b.mustOK("SELECT INBOX")
	if u := b.mustOK("FETCH 1 (FLAGS)"); !slices.Equal(u, []string{`* 1 FETCH (FLAGS ())`}) {
		t.Errorf("FETCH FLAGS before CONDSTORE: %q", u)
	}
	u := b.mustOK("FETCH 1 (MODSEQ)")
	if !hasLine(u, "* OK [HIGHESTMODSEQ ") || !hasLine(u, "* 1 FETCH (MODSEQ (") {
		t.Errorf("first FETCH MODSEQ: %q", u)
	}
	if u := a.mustOK("FETCH 1 (FLAGS)"); !hasLine(u, `* 1 FETCH (FLAGS (\Recent) MODSEQ (`) {
		t.Errorf("FETCH FLAGS after STATUS HIGHESTMODSEQ: %q", u)
	}

	u = a.mustOK(`STORE 2 +FLAGS (\Seen)`)
	m2 := capture(t, u, modSeqRE)
	if m2 <= h0 || !hasLine(u, `* 2 FETCH (FLAGS (\Recent \Seen) MODSEQ (`) {
		t.Errorf("STORE: %q (modseq %d, SELECT's %d)", u, m2, h0)
	}
	// The other session is told with MODSEQ, as it enabled CONDSTORE.
	if u := b.mustOK("NOOP"); !slices.Equal(u, []string{`* 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ (` + strconv.FormatUint(m2, 10) + `))`}) {
		t.Errorf("unilateral FETCH: %q", u)
	}
	if u := a.mustOK("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", h0); len(u) != 1 || !strings.HasPrefix(u[0], "* 2 FETCH") {
		t.Errorf("CHANGEDSINCE %d: %q", h0, u)
	}
	if u := a.mustOK("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", m2); len(u) != 0 {
		t.Errorf("CHANGEDSINCE %d: %q", m2, u)
	}

	// Message 2 changed after h0: a conditional STORE leaves it alone.
	u, done := a.cmd(`STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\Flagged)`, h0)
	if !strings.Contains(done, "OK [MODIFIED 2]") || len(u) != 2 || !hasLine(u, `* 1 FETCH (FLAGS (\Recent \Flagged) MODSEQ (`) || hasLine(u, "* 2 FETCH") {
		t.Errorf("STORE UNCHANGEDSINCE: %q %q", u, done)
	}
	u, done = a.cmd(`UID STORE 1:3 (UNCHANGEDSINCE 0) +FLAGS (\Deleted)`)
	if !strings.Contains(done, "OK [MODIFIED 1:3]") || len(u) != 0 {
		t.Errorf("STORE UNCHANGEDSINCE 0: %q %q", u, done)
	}
	u = a.mustOK(`STORE 3 +FLAGS.SILENT (\Answered)`)
	m3 := capture(t, u, modSeqRE)
	if !slices.Equal(u, []string{"* 3 FETCH (MODSEQ (" + strconv.FormatUint(m3, 10) + "))"}) {
		t.Errorf("STORE .SILENT: %q", u)
	}
	if u := a.mustOK(`SEARCH MODSEQ %d`, m2); !slices.Equal(u, []string{"* SEARCH 1 2 3 (MODSEQ " + strconv.FormatUint(m3, 10) + ")"}) {
		t.Errorf("SEARCH MODSEQ: %q", u)
	}
	m1 := capture(t, a.mustOK("FETCH 1 (MODSEQ)"), modSeqRE)
	u = a.mustOK(`SEARCH RETURN (MIN) MODSEQ "/flags/\\seen" all %d`, m2)
	if len(u) != 1 || !strings.HasSuffix(u[0], " MIN 1 MODSEQ "+strconv.FormatUint(m1, 10)) {
		t.Errorf("ESEARCH MIN with MODSEQ: %q, want message 1's modseq %d", u, m1)
	}
	if u := a.mustOK(`SEARCH MODSEQ %d`, m3+1); !slices.Equal(u, []string{"* SEARCH"}) {
		t.Errorf("SEARCH MODSEQ above all: %q", u)
	}
}

// TestQResync checks QRESYNC (RFC 7162 §3.2): VANISHED instead of EXPUNGE
// (after commands and in IDLE), SELECT (QRESYNC …) with and without
// known UIDs or the right UIDVALIDITY, UID FETCH (CHANGEDSINCE n
// VANISHED), and CLOSED when switching mailboxes.
func TestQResync(t *testing.T) {
	ts := newTestServer(t)
	for i := 1; i <= 6; i++ {
		ts.deliver(t, "alice@example.org", "", testMessage(i))
	}
	a, b := ts.raw(t), ts.raw(t)
	a.login("alice@example.org", "alicepw")
	b.login("alice@example.org", "alicepw")
	if u := a.mustOK("ENABLE QRESYNC"); !slices.Equal(u, []string{"* ENABLED QRESYNC"}) {
		t.Errorf("ENABLE: %q", u)
	}
	u := a.mustOK("SELECT INBOX")
	h0, v := capture(t, u, highestModSeqRE), capture(t, u, uidValidityRE)
	b.mustOK("SELECT INBOX")

	b.mustOK(`STORE 2 +FLAGS (\Seen)`)
	b.mustOK(`STORE 3:4 +FLAGS.SILENT (\Deleted)`)
	b.mustOK("EXPUNGE")
	u = a.mustOK("NOOP")
	if !hasLine(u, `* 2 FETCH (UID 2 FLAGS (\Recent \Seen) MODSEQ (`) || !hasLine(u, "* VANISHED 3:4") || hasLine(u, "EXPUNGE") {
		t.Errorf("updates after ENABLE QRESYNC: %q", u)
	}
	if u := a.mustOK("FETCH 1 (FLAGS)"); !hasLine(u, `* 1 FETCH (UID 1 FLAGS (\Recent) MODSEQ (`) {
		t.Errorf("FETCH after QRESYNC lacks UID or MODSEQ: %q", u)
	}

	// A client that last saw h0 resyncs.
	c := ts.raw(t)
	c.login("alice@example.org", "alicepw")
	c.mustOK("ENABLE QRESYNC")
	u = c.mustOK("SELECT INBOX (QRESYNC (%d %d))", v, h0)
	n := len(u)
	if n < 2 || u[n-2] != "* VANISHED (EARLIER) 3:4" || !strings.HasPrefix(u[n-1], `* 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ (`) {
		t.Errorf("SELECT QRESYNC: %q", u)
	}
	u = c.mustOK("EXAMINE INBOX (QRESYNC (%d %d 1:3,6))", v, h0)
	if u[0] != "* OK [CLOSED] Previous mailbox is now closed" || !hasLine(u, "* VANISHED (EARLIER) 3") || hasLine(u, "3:4") {
		t.Errorf("EXAMINE QRESYNC with known UIDs: %q", u)
	}
	if u := c.mustOK("SELECT INBOX (QRESYNC (%d %d 1:2 (1:2 1:2)))", v, h0); hasLine(u, "VANISHED") || !hasLine(u, "* 2 FETCH (UID 2") {
		t.Errorf("SELECT QRESYNC knowing no expunged UID: %q", u)
	}
	if u := c.mustOK("SELECT INBOX (QRESYNC (%d %d))", v+1, h0); hasLine(u, "VANISHED") || hasLine(u, "FETCH") {
		t.Errorf("SELECT QRESYNC with another UIDVALIDITY: %q", u)
	}
	u = c.mustOK("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", h0)
	if len(u) != 2 || u[0] != "* VANISHED (EARLIER) 3:4" || !strings.HasPrefix(u[1], `* 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ (`) {
		t.Errorf("UID FETCH VANISHED: %q", u)
	}
	if u := c.mustOK("UID FETCH 5:* (FLAGS) (CHANGEDSINCE %d VANISHED)", h0); len(u) != 0 {
		t.Errorf("UID FETCH 5:* VANISHED: %q", u)
	}

	// In IDLE too.
	c.send("I1 IDLE\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	b.mustOK(`UID STORE 6 +FLAGS.SILENT (\Deleted)`)
	b.mustOK("UID EXPUNGE 6")
	for {
		l := c.line()
		if l == "* VANISHED 6" {
			break
		}
		if strings.Contains(l, "EXPUNGE") {
			t.Fatalf("EXPUNGE in IDLE after QRESYNC: %q", l)
		}
	}
	c.send("DONE\r\n")
	if _, done := c.until("I1"); !strings.Contains(done, "OK") {
		t.Errorf("IDLE end: %q", done)
	}
}

// TestCondStoreIMAPClient drives CONDSTORE with go-imap's imapclient: SELECT
// (CONDSTORE), FETCH MODSEQ with CHANGEDSINCE, STORE UNCHANGEDSINCE,
// STATUS HIGHESTMODSEQ.
func TestCondStoreIMAPClient(t *testing.T) {
	ts := newTestServer(t)
	for i := 1; i <= 3; i++ {
		ts.deliver(t, "alice@example.org", "", testMessage(i))
	}
	c := ts.client(t, "alice@example.org", "alicepw", nil)
	if !c.Caps().Has(imap.CapCondStore) || !c.Caps().Has(imap.CapQResync) {
		t.Fatalf("caps: %v", c.Caps())
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil || sel.HighestModSeq == 0 {
		t.Fatalf("SELECT (CONDSTORE): %+v %v", sel, err)
	}
	if _, err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(1, 2, 3), &imap.FetchOptions{UID: true, Flags: true, ModSeq: true, ChangedSince: sel.HighestModSeq}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].UID != 2 || msgs[0].ModSeq <= sel.HighestModSeq {
		t.Fatalf("FETCH CHANGEDSINCE: %+v %v", msgs, err)
	}
	// Message 2 changed since sel.HighestModSeq: only 1 and 3 change.
	stored, err := c.Store(imap.UIDSetNum(1, 2, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}},
		&imap.StoreOptions{UnchangedSince: sel.HighestModSeq}).Collect()
	if err != nil || len(stored) != 2 || stored[0].UID != 1 || stored[1].UID != 3 || stored[0].ModSeq == 0 {
		t.Fatalf("STORE UNCHANGEDSINCE: %+v %v", stored, err)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{HighestModSeq: true}).Wait()
	if err != nil || st.HighestModSeq != stored[1].ModSeq {
		t.Fatalf("STATUS HIGHESTMODSEQ: %+v %v, want %d", st, err, stored[1].ModSeq)
	}
}

// TestQResyncPython drives QRESYNC with Python's imaplib (raw commands, as
// imaplib knows no QRESYNC): ENABLE, SELECT (QRESYNC), UID FETCH VANISHED.
func TestQResyncPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	ts := newTestServer(t)
	for i := 1; i <= 4; i++ {
		ts.deliver(t, "alice@example.org", "", testMessage(i))
	}
	a := ts.raw(t)
	a.login("alice@example.org", "alicepw")
	u := a.mustOK("SELECT INBOX")
	h0, v := capture(t, u, highestModSeqRE), capture(t, u, uidValidityRE)
	a.mustOK(`STORE 1 +FLAGS (\Flagged)`)
	a.mustOK(`STORE 3 +FLAGS (\Deleted)`)
	a.mustOK("EXPUNGE")

	host, port, _ := strings.Cut(ts.addr, ":")
	script := `
import imaplib, sys
M = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
M.login("alice@example.org", "alicepw")
typ, data = M._simple_command("ENABLE", "QRESYNC")
assert typ == "OK", (typ, data)
assert M.untagged_responses.pop("ENABLED") == [b"QRESYNC"]
typ, data = M._simple_command("SELECT", "INBOX", "(QRESYNC (%s %s))" % (sys.argv[3], sys.argv[4]))
assert typ == "OK", (typ, data)
M.state = "SELECTED"  # imaplib's own select sends no parameters
print("select-vanished", M.untagged_responses.pop("VANISHED"))
print("select-fetch", M.untagged_responses.pop("FETCH"))
typ, data = M.uid("FETCH", "1:*", "(FLAGS) (CHANGEDSINCE %s VANISHED)" % sys.argv[4])
assert typ == "OK", (typ, data)
print("fetch-vanished", M.untagged_responses.pop("VANISHED"))
print("fetch", data)
M.logout()
`
	out, err := exec.Command(py, "-c", script, host, port, strconv.FormatUint(v, 10), strconv.FormatUint(h0, 10)).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	for _, want := range []string{
		"select-vanished [b'(EARLIER) 3']",
		`select-fetch [b'1 (UID 1 FLAGS (\\Flagged) MODSEQ (`,
		"fetch-vanished [b'(EARLIER) 3']",
		`fetch [b'1 (UID 1 FLAGS (\\Flagged) MODSEQ (`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("python output lacks %q:\n%s", want, out)
		}
	}
}
