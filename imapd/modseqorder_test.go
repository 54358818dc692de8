package imapd

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

var fetchUIDModSeqRE = regexp.MustCompile(`^\* \d+ FETCH \(.*UID (\d+) .*MODSEQ \((\d+)\)`)

// checkModSeqOrder fails if, among the FETCH responses one session
// received (in order), a message's MODSEQ ever goes down: a client
// (imaptest: "MODSEQ dropped") keeps the highest it saw, and an older
// one coming after it is a stale change reported as news.
func checkModSeqOrder(t *testing.T, what string, seen map[uint64]uint64, lines []string) {
	t.Helper()
	for _, l := range lines {
		m := fetchUIDModSeqRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		uid, _ := strconv.ParseUint(m[1], 10, 64)
		ms, _ := strconv.ParseUint(m[2], 10, 64)
		if ms < seen[uid] {
			t.Errorf("%s: UID %d MODSEQ dropped %d -> %d in %q", what, uid, seen[uid], ms, lines)
		}
		seen[uid] = max(seen[uid], ms)
	}
}

// TestUnilateralModSeqNeverDrops: changes another session made are
// queued for a session until its next command ends; if that command's own
// FETCH or STORE responses already showed the message at a newer modseq,
// the queued older FETCH must not follow them.
func TestUnilateralModSeqNeverDrops(t *testing.T) {
	ts := newTestServer(t)
	for i := 1; i <= 3; i++ {
		ts.deliver(t, "alice@example.org", "", testMessage(i))
	}
	a, b := ts.raw(t), ts.raw(t)
	a.login("alice@example.org", "alicepw")
	b.login("alice@example.org", "alicepw")
	a.mustOK("ENABLE QRESYNC")
	a.mustOK("SELECT INBOX")
	b.mustOK("SELECT INBOX")
	seen := map[uint64]uint64{}

	// FETCH after two queued changes of one message.
	b.mustOK(`STORE 1 +FLAGS (\Seen)`)
	b.mustOK(`STORE 1 +FLAGS (\Answered)`)
	checkModSeqOrder(t, "FETCH", seen, a.mustOK("UID FETCH 1 (FLAGS)"))

	// STORE after a queued change of the same message: the STORE's own
	// response is newer than the queued change.
	b.mustOK(`STORE 2 +FLAGS (\Seen)`)
	u := a.mustOK(`STORE 2 +FLAGS (\Flagged)`)
	checkModSeqOrder(t, "STORE", seen, u)
	if !hasLine(u, `\Seen`) {
		t.Errorf("STORE response lacks the other session's \\Seen: %q", u)
	}

	// STORE .SILENT: the queued change from the other session is still
	// news to this client (nothing was written for it), its own is not.
	b.mustOK(`STORE 3 +FLAGS (\Seen)`)
	u = a.mustOK(`STORE 3 +FLAGS.SILENT (\Flagged)`)
	checkModSeqOrder(t, "STORE.SILENT", seen, u)
	u = append(u, a.mustOK("NOOP")...)
	checkModSeqOrder(t, "NOOP", seen, u)

	// A body FETCH setting \Seen after a queued change.
	b.mustOK(`STORE 1 -FLAGS (\Seen)`)
	b.mustOK(`STORE 1 +FLAGS (\Draft)`)
	checkModSeqOrder(t, "FETCH BODY[]", seen, a.mustOK("FETCH 1 (BODY[HEADER])"))
	checkModSeqOrder(t, "NOOP", seen, a.mustOK("NOOP"))
}

// TestFetchAnnouncesKeywordsFirst: a FETCH command showing a keyword that
// another session brought into the mailbox writes the FLAGS announcing it
// first, not after its own responses with the queued updates (RFC 3501
// §7.2.6: FLAGS lists every flag a FETCH may show).
func TestFetchAnnouncesKeywordsFirst(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, "alice@example.org", "", testMessage(1))
	a, b := ts.raw(t), ts.raw(t)
	a.login("alice@example.org", "alicepw")
	b.login("alice@example.org", "alicepw")
	a.mustOK("SELECT INBOX")
	b.mustOK("SELECT INBOX")
	b.mustOK(`STORE 1 +FLAGS ($Brand)`)
	if u := a.mustOK("FETCH 1 (FLAGS RFC822.SIZE)"); !announcedFirst(u, "$Brand", 1) {
		t.Errorf("FLAGS with $Brand must precede the FETCH showing it: %q", u)
	}
}

// TestFetchAnnouncesUnseenKeyword: a keyword the mailbox's state has not
// heard of (written by another process, or read from a commit whose event
// has not reached the state yet) is announced by FLAGS before the FETCH
// that shows it, and once only.
func TestFetchAnnouncesUnseenKeyword(t *testing.T) {
	dir := t.TempDir()
	storeInDir(t, dir)
	ts := newTestServer(t)
	ts.deliver(t, "alice@example.org", "INBOX", testMessage(1))
	a := ts.raw(t)
	a.login("alice@example.org", "alicepw")
	a.mustOK("SELECT INBOX")

	inOtherProcess(t, dir, "alice@example.org", func(acct mailstore.Account) {
		mb, err := acct.Mailbox(context.Background(), "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := acct.StoreFlags(context.Background(), mb.ID, imap.UIDSetNum(1), mailstore.FlagsAdd, []imap.Flag{"$Elsewhere"}, 0); err != nil {
			t.Fatal(err)
		}
	})

	if u := a.mustOK("FETCH 1 (FLAGS)"); !announcedFirst(u, "$Elsewhere", 1) {
		t.Fatalf("FLAGS with $Elsewhere must precede the FETCH showing it: %q", u)
	}
	if u := a.mustOK("FETCH 1 (FLAGS)"); strings.Contains(strings.Join(u, "\n"), "* FLAGS") {
		t.Fatalf("FLAGS announced again: %q", u)
	}
}
