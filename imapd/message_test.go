package imapd

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func countLines(lines []string, substr string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func TestFetch(t *testing.T) {
	ts := newTestServer(t)
	for i := 1; i <= 3; i++ {
		ts.deliver(t, "alice@example.org", "", testMessage(i))
	}
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	u := rc.mustOK("SELECT INBOX")
	if !hasLine(u, "* 3 EXISTS") || !hasLine(u, "UIDNEXT 4") || !hasLine(u, "[UNSEEN 1]") {
		t.Fatalf("SELECT: %q", u)
	}

	u = rc.mustOK("FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
	if len(u) != 3 {
		t.Fatalf("FETCH 1:*: %q", u)
	}
	size := len(testMessage(2))
	// This SELECT is the first: every message is \Recent in it.
	want := fmt.Sprintf(`* 2 FETCH (UID 2 FLAGS (\Recent) INTERNALDATE "`)
	if !strings.HasPrefix(u[1], want) || !strings.Contains(u[1], fmt.Sprintf("RFC822.SIZE %d", size)) ||
		!strings.Contains(u[1], `ENVELOPE ("Sat, 21 Nov 2026 10:00:00 +0000" "message number 2" (("Sender 2" NIL "sender2" "example.net"))`) ||
		!strings.Contains(u[1], `BODYSTRUCTURE ("text" "plain" ("charset" "utf-8")`) {
		t.Errorf("FETCH 2: %q", u[1])
	}

	// BODY.PEEK[] is byte-exact and leaves \Seen alone.
	u = rc.mustOK("FETCH 2 BODY.PEEK[]")
	if want := fmt.Sprintf("* 2 FETCH (BODY[] {%d}\r\n%s)", size, testMessage(2)); u[0] != want {
		t.Errorf("BODY.PEEK[]:\n got %q\nwant %q", u[0], want)
	}
	u = rc.mustOK("FETCH 2 FLAGS")
	if u[0] != `* 2 FETCH (FLAGS (\Recent))` {
		t.Errorf("after PEEK: %q", u)
	}
	u = rc.mustOK("FETCH 2 (BODY[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT] BODY.PEEK[]<6.6>)")
	if !strings.Contains(u[0], "BODY[HEADER.FIELDS (\"SUBJECT\")] {29}\r\nSubject: message number 2\r\n\r\n") ||
		!strings.Contains(u[0], "BODY[TEXT] {38}\r\nHello, this is body 2.\r\nSecond line.\r\n") ||
		!strings.Contains(u[0], "BODY[]<6> {6}\r\nSender") ||
		!strings.Contains(u[0], `FLAGS (\Recent \Seen)`) {
		t.Errorf("sections: %q", u[0])
	}
	u = rc.mustOK("UID FETCH 3 (BINARY.PEEK[1] BINARY.SIZE[1])")
	if !strings.Contains(u[0], "UID 3") || !strings.Contains(u[0], "BINARY[1] ~{38}\r\nHello, this is body 3.") || !strings.Contains(u[0], "BINARY.SIZE[1] 38") {
		t.Errorf("BINARY: %q", u[0])
	}
	// BODY[] without PEEK sets \Seen and says so.
	u = rc.mustOK("FETCH 3 BODY[]")
	if !strings.Contains(u[0], `FLAGS (\Recent \Seen)`) {
		t.Errorf("BODY[] did not report \\Seen: %q", u[0])
	}
	// Sequence numbers past the end and UID ranges past the last UID.
	if u, d := rc.cmd("FETCH 5:9 FLAGS"); !strings.HasPrefix(d, "BAD") || len(u) != 0 {
		t.Errorf("FETCH 5:9 (RFC 9051 §9: BAD beyond the last message): %s %q", d, u)
	}
	u = rc.mustOK("UID FETCH 100:* UID")
	if len(u) != 1 || !strings.HasPrefix(u[0], "* 3 FETCH (UID 3") {
		t.Errorf("UID FETCH 100:* (RFC 9051 §6.4.8: includes the last message): %q", u)
	}
	u = rc.mustOK("FETCH 1,1,2 UID")
	if len(u) != 2 {
		t.Errorf("FETCH 1,1,2: %q", u)
	}
	u = rc.mustOK("FETCH 1 FAST")
	if !strings.Contains(u[0], "RFC822.SIZE") || !strings.Contains(u[0], "INTERNALDATE") {
		t.Errorf("FAST: %q", u)
	}
	u = rc.mustOK("FETCH 1 (RFC822.HEADER)")
	if !strings.Contains(u[0], "RFC822.HEADER {") {
		t.Errorf("RFC822.HEADER: %q", u)
	}
}

func TestStoreSearchCopyMove(t *testing.T) {
	ts := newTestServer(t)
	for i := 1; i <= 5; i++ {
		ts.deliver(t, "alice@example.org", "", testMessage(i))
	}
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	rc.mustOK("SELECT INBOX")

	u := rc.mustOK(`STORE 1:2 +FLAGS (\Flagged $Work)`)
	// The new keyword is announced first (TestKeywordsAnnouncedInFlags).
	if len(u) != 3 || !strings.HasPrefix(u[0], "* FLAGS (") || !strings.Contains(u[1], `\Flagged`) || !strings.Contains(u[1], `$Work`) {
		t.Errorf("STORE: %q", u)
	}
	u = rc.mustOK(`UID STORE 3 +FLAGS.SILENT (\seen)`)
	if len(u) != 0 {
		t.Errorf("STORE .SILENT echoed: %q", u)
	}
	u = rc.mustOK(`UID STORE 3 -FLAGS (\Seen)`)
	if len(u) != 1 || u[0] != `* 3 FETCH (UID 3 FLAGS (\Recent))` {
		t.Errorf("UID STORE -FLAGS: %q", u)
	}
	u = rc.mustOK(`STORE 4 FLAGS (\Answered \Recent)`)
	// \Recent cannot be stored, but the message is recent here.
	if u[0] != `* 4 FETCH (FLAGS (\Recent \Answered))` {
		t.Errorf("STORE FLAGS: %q", u)
	}

	for _, tc := range []struct{ name, query, want string }{
		{"flagged", "SEARCH FLAGGED", "* SEARCH 1 2"},
		{"unflagged", "SEARCH UNFLAGGED", "* SEARCH 3 4 5"},
		{"keyword", "SEARCH KEYWORD $Work", "* SEARCH 1 2"},
		{"or", "SEARCH OR ANSWERED 5", "* SEARCH 4 5"},
		{"not", "SEARCH NOT 1:3", "* SEARCH 4 5"},
		{"nested seq", "SEARCH OR (NOT 2:5) 4", "* SEARCH 1 4"},
		{"subject", `SEARCH SUBJECT "number 3"`, "* SEARCH 3"},
		{"body", `SEARCH BODY "body 4"`, "* SEARCH 4"},
		{"uid", "UID SEARCH UID 2:*", "* SEARCH 2 3 4 5"},
		{"star", "SEARCH 4:*", "* SEARCH 4 5"},
		{"larger", "SEARCH LARGER 100000", "* SEARCH"},
		{"esearch", "SEARCH RETURN (MIN MAX COUNT) UNFLAGGED", "* ESEARCH (TAG "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := rc.mustOK("%s", tc.query)
			if !hasLine(u, tc.want) {
				t.Errorf("%s: %q, want %q", tc.query, u, tc.want)
			}
			if tc.name == "esearch" && !hasLine(u, "MIN 3 MAX 5 COUNT 3") {
				t.Errorf("ESEARCH: %q", u)
			}
		})
	}
	// SEARCHRES: save, then use "$".
	rc.mustOK("SEARCH RETURN (SAVE) FLAGGED")
	u = rc.mustOK("FETCH $ UID")
	if len(u) != 2 || !strings.HasPrefix(u[0], "* 1 FETCH (UID 1)") {
		t.Errorf("FETCH $: %q", u)
	}

	u = rc.mustOK("COPY 1:2 Archive")
	_, done := rc.cmd("COPY 1:2 Archive")
	if !regexp.MustCompile(`^OK \[COPYUID \d+ 1:2 3:4\]`).MatchString(done) {
		t.Errorf("second COPY: %s", done)
	}
	if _, d := rc.cmd("COPY 1 Nope"); !strings.HasPrefix(d, "NO [TRYCREATE]") {
		t.Errorf("COPY to missing: %s", d)
	}
	u = rc.mustOK("STATUS Archive (MESSAGES)")
	if !hasLine(u, "(MESSAGES 4)") {
		t.Errorf("Archive after COPY: %q", u)
	}

	// MOVE: COPYUID first, then exactly one EXPUNGE per message.
	u, done = rc.cmd("MOVE 2:3 Trash")
	if !strings.HasPrefix(done, "OK") || len(u) != 3 || !regexp.MustCompile(`^\* OK \[COPYUID \d+ 2:3 1:2\]`).MatchString(u[0]) ||
		u[1] != "* 2 EXPUNGE" || u[2] != "* 2 EXPUNGE" {
		t.Errorf("MOVE: %q %s", u, done)
	}
	u = rc.mustOK("FETCH 1:* UID")
	if len(u) != 3 || !strings.Contains(u[1], "UID 4") || !strings.Contains(u[2], "* 3 FETCH (UID 5)") {
		t.Errorf("after MOVE: %q", u)
	}

	// EXPUNGE and UID EXPUNGE.
	rc.mustOK(`STORE 1:3 +FLAGS.SILENT (\Deleted)`)
	u = rc.mustOK("UID EXPUNGE 4")
	if len(u) != 1 || u[0] != "* 2 EXPUNGE" {
		t.Errorf("UID EXPUNGE: %q", u)
	}
	u = rc.mustOK("EXPUNGE")
	if len(u) != 2 || u[0] != "* 1 EXPUNGE" || u[1] != "* 1 EXPUNGE" {
		t.Errorf("EXPUNGE: %q", u)
	}

	// APPEND with flags and date; EXISTS for the selected mailbox.
	msg := testMessage(9)
	rc.send(fmt.Sprintf("A1 APPEND INBOX (\\Seen \\Draft) \"05-Jan-2026 10:20:30 +0100\" {%d}\r\n", len(msg)))
	if l := rc.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND continuation: %q", l)
	}
	rc.send(msg + "\r\n")
	u, done = rc.until("A1")
	if !regexp.MustCompile(`^OK \[APPENDUID \d+ 6\]`).MatchString(done) || !hasLine(u, "* 1 EXISTS") {
		t.Errorf("APPEND: %q %s", u, done)
	}
	u = rc.mustOK("UID FETCH 6 (FLAGS INTERNALDATE)")
	if !strings.Contains(u[0], `FLAGS (\Recent \Seen \Draft)`) || !strings.Contains(u[0], `" 5-Jan-2026 10:20:30 +0100"`) {
		t.Errorf("appended: %q", u)
	}
	// LITERAL+ append.
	rc.send(fmt.Sprintf("A2 APPEND Archive {%d+}\r\n%s\r\n", len(msg), msg))
	if _, done := rc.until("A2"); !strings.HasPrefix(done, "OK [APPENDUID") {
		t.Errorf("LITERAL+ APPEND: %s", done)
	}
	if _, d := rc.cmd("APPEND Nope {1+}\r\nx"); !strings.HasPrefix(d, "NO [TRYCREATE]") {
		t.Errorf("APPEND to missing: %s", d)
	}

	// CLOSE expunges silently.
	rc.mustOK(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	u = rc.mustOK("CLOSE")
	if hasLine(u, "EXPUNGE") {
		t.Errorf("CLOSE sent EXPUNGE: %q", u)
	}
	u = rc.mustOK("STATUS INBOX (MESSAGES)")
	if !hasLine(u, "(MESSAGES 0)") {
		t.Errorf("after CLOSE: %q", u)
	}
}

func TestExamineIsReadOnly(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, "alice@example.org", "", testMessage(1))
	ts.deliver(t, "alice@example.org", "", testMessage(2))
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	rc.mustOK(`SELECT INBOX`)
	rc.mustOK(`STORE 2 +FLAGS (\Deleted)`)
	_, done := rc.cmd("EXAMINE INBOX")
	if !strings.HasPrefix(done, "OK [READ-ONLY]") {
		t.Fatalf("EXAMINE: %s", done)
	}
	for _, c := range []string{`STORE 1 +FLAGS (\Seen)`, "EXPUNGE", "UID EXPUNGE 2", "MOVE 1 Trash"} {
		if _, d := rc.cmd("%s", c); !strings.HasPrefix(d, "NO") {
			t.Errorf("%s on EXAMINE: %s", c, d)
		}
	}
	u := rc.mustOK("FETCH 1 BODY[]")
	if strings.Contains(u[0], `\Seen`) {
		t.Errorf("BODY[] set \\Seen on EXAMINE: %q", u)
	}
	rc.mustOK("COPY 1 Archive") // reading is fine
	rc.mustOK("CLOSE")
	u = rc.mustOK("STATUS INBOX (MESSAGES UNSEEN)")
	if !hasLine(u, "MESSAGES 2") || !hasLine(u, "UNSEEN 2") {
		t.Errorf("CLOSE after EXAMINE changed the mailbox: %q", u)
	}
}

// TestLiveUpdates checks what another session (or a delivery) makes a
// selected session see: EXISTS in IDLE within a second, FETCH FLAGS, and
// EXPUNGE with sequence numbers that stay right.
func TestLiveUpdates(t *testing.T) {
	ts := newTestServer(t)
	a, b := ts.aliceTwice(t, 5)

	a.send("I1 IDLE\r\n")
	if l := a.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	start := time.Now()
	ts.deliver(t, "alice@example.org", "", testMessage(6))
	a.conn.SetReadDeadline(time.Now().Add(time.Second))
	if l, err := a.r.ReadString('\n'); err != nil || l != "* 6 EXISTS\r\n" {
		t.Fatalf("IDLE after delivery: %q %v", l, err)
	}
	t.Logf("EXISTS reached the IDLE client in %v", time.Since(start))
	// A claimed 1:5 at SELECT, and now 6 (RFC 3501 §7.3.2).
	if l := a.line(); l != "* 6 RECENT" {
		t.Errorf("IDLE after delivery, after EXISTS: %q", l)
	}

	b.mustOK(`STORE 2 +FLAGS (\Flagged)`)
	if l := a.line(); l != `* 2 FETCH (UID 2 FLAGS (\Recent \Flagged))` {
		t.Errorf("IDLE after other session's STORE: %q", l)
	}
	a.send("DONE\r\n")
	if _, d := a.until("I1"); !strings.HasPrefix(d, "OK") {
		t.Fatalf("IDLE end: %s", d)
	}

	// B expunges 2 and 4; until A polls, A's view keeps them.
	b.mustOK(`STORE 2,4 +FLAGS.SILENT (\Deleted)`)
	u := b.mustOK("EXPUNGE")
	if len(u) != 2 || u[0] != "* 2 EXPUNGE" || u[1] != "* 3 EXPUNGE" {
		t.Errorf("B EXPUNGE: %q", u)
	}
	// FETCH must not send EXPUNGE (RFC 9051 §7.5.1) and must still use A's
	// numbering: 5 is UID 5, 4 is gone.
	u = a.mustOK("FETCH 4:5 UID")
	if hasLine(u, "EXPUNGE") || !hasLine(u, "* 5 FETCH (UID 5)") || hasLine(u, "* 4 FETCH (UID 4)") {
		t.Errorf("A FETCH before NOOP: %q", u)
	}
	u = a.mustOK("SEARCH ALL")
	if !hasLine(u, "* SEARCH 1 3 5 6") {
		t.Errorf("A SEARCH before NOOP: %q", u)
	}
	u = a.mustOK("NOOP")
	if !hasLine(u, "* 2 EXPUNGE") || !hasLine(u, "* 3 EXPUNGE") {
		t.Errorf("A NOOP: %q", u)
	}
	u = a.mustOK("FETCH 1:* UID")
	if len(u) != 4 || !strings.HasPrefix(u[3], "* 4 FETCH (UID 6)") {
		t.Errorf("A after NOOP: %q", u)
	}

	// A MOVE by B shows up in A as EXPUNGE, once.
	b.mustOK("MOVE 1 Trash")
	u = a.mustOK("NOOP")
	if countLines(u, "EXPUNGE") != 1 || u[0] != "* 1 EXPUNGE" {
		t.Errorf("A after B's MOVE: %q", u)
	}
}

func TestIsolation(t *testing.T) {
	ts := newTestServer(t)
	bob := ts.raw(t)
	bob.login("bob@example.org", "bobpw")
	bob.mustOK("CREATE Secret")
	ts.deliver(t, "bob@example.org", "", testMessage(1))

	a := ts.raw(t)
	a.login("alice@example.org", "alicepw")
	for _, name := range []string{
		"Secret", "../bob@example.org/INBOX", "../bob@example.org", "~bob/INBOX", "~bob@example.org/Secret",
		"/INBOX", "/Secret", "#shared/Secret", "Other Users/bob@example.org/Secret", "bob@example.org/INBOX",
		"INBOX/../../bob@example.org/INBOX", "./Secret", `"..\\bob"`, "%2e%2e/bob",
	} {
		q := fmt.Sprintf("%q", name)
		if _, d := a.cmd("SELECT %s", q); !strings.HasPrefix(d, "NO") {
			t.Errorf("SELECT %s: %s", q, d)
		}
		if _, d := a.cmd("STATUS %s (MESSAGES)", q); !strings.HasPrefix(d, "NO") {
			t.Errorf("STATUS %s: %s", q, d)
		}
		if u, _ := a.cmd(`LIST %s "*"`, q); hasLine(u, "Secret") {
			t.Errorf("LIST %s: %q", q, u)
		}
	}
	a.send("C1 CREATE {8}\r\n")
	a.line()
	a.send("bad\x01name\r\n")
	if _, d := a.until("C1"); !strings.HasPrefix(d, "NO") && !strings.HasPrefix(d, "BAD") {
		t.Errorf("CREATE with a control character: %s", d)
	}
	for _, name := range []string{"../x", "a//b", "/abs", "a/./b", "a/../b"} {
		if _, d := a.cmd("CREATE %q", name); !strings.HasPrefix(d, "NO") && !strings.HasPrefix(d, "BAD") {
			t.Errorf("CREATE %q: %s", name, d)
		}
	}
	u := a.mustOK(`LIST "" "*"`)
	if hasLine(u, "Secret") || hasLine(u, "bob") {
		t.Errorf("alice sees bob's mailboxes: %q", u)
	}
	u = a.mustOK("STATUS INBOX (MESSAGES)")
	if !hasLine(u, "MESSAGES 0") {
		t.Errorf("alice's INBOX: %q", u)
	}
}

// TestKeywordsAnnouncedInFlags: FLAGS lists every keyword in use in the
// mailbox at SELECT, and a STORE that brings a new keyword writes FLAGS
// before the FETCH that shows it, in the storing session and in another
// one that has the mailbox selected.
func TestKeywordsAnnouncedInFlags(t *testing.T) {
	ts := newTestServer(t)
	a, b := ts.aliceTwice(t, 2)

	u := a.mustOK(`STORE 1 +FLAGS ($Label1)`)
	if len(u) != 2 || !strings.HasPrefix(u[0], "* FLAGS (") || !strings.Contains(u[0], "$Label1") || !strings.Contains(u[1], "FETCH") {
		t.Fatalf("STORE of a new keyword: %q", u)
	}
	u = a.mustOK(`STORE 2 +FLAGS ($label1)`) // known, in another case
	if hasLine(u, "* FLAGS") {
		t.Errorf("STORE of a known keyword announced FLAGS again: %q", u)
	}
	u = a.mustOK(`STORE 2 +FLAGS.SILENT (Junk)`)
	if len(u) != 1 || !strings.HasPrefix(u[0], "* FLAGS (") || !strings.Contains(u[0], "Junk") {
		t.Errorf("silent STORE of a new keyword: %q", u)
	}

	u = b.mustOK("NOOP")
	flags := slices.IndexFunc(u, func(l string) bool { return strings.HasPrefix(l, "* FLAGS (") && strings.Contains(l, "Junk") })
	fetch := slices.IndexFunc(u, func(l string) bool { return strings.Contains(l, "FETCH") && strings.Contains(l, "Junk") })
	if flags < 0 || fetch < 0 || flags > fetch {
		t.Errorf("other session: FLAGS must come before the FETCH showing the keyword: %q", u)
	}

	c := ts.raw(t)
	c.login("alice@example.org", "alicepw")
	u = c.mustOK("SELECT INBOX")
	if !hasLine(u, `* FLAGS (\Seen \Answered \Flagged \Deleted \Draft $Label1 Junk)`) {
		t.Errorf("SELECT FLAGS: %q", u)
	}
}

// TestFetchEnvelopeGroupsAndRoutes: ENVELOPE keeps address groups (start
// and end markers), source routes, names from comments, and the subject's
// and names' own text (encoded words as the sender wrote them); SEARCH FROM
// finds an address written with comments between its parts.
func TestFetchEnvelopeGroupsAndRoutes(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, "alice@example.org", "", "Date: Thu, 15 Feb 2007 01:02:03 +0200\r\n"+
		"Subject: =?UTF-8?B?w6l0w6k=?= report\r\n"+
		"From: user@domain (Real Name)\r\n"+
		"Sender: <@route:user@domain>\r\n"+
		"To: group: g1@d1.org, =?ISO-8859-1?Q?Andr=E9?= <g2@d2.org>;, group2: g3@d3.org;\r\n"+
		"Cc: group:;, group2: (foo) ;\r\n"+
		"\r\nbody\r\n")
	ts.deliver(t, "alice@example.org", "", "From: <user-from (comment)@ (comment) domain.org>\r\n\r\nbody\r\n")
	ts.deliver(t, "alice@example.org", "", "From: other@domain.org\r\n\r\nbody\r\n")
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	rc.mustOK("SELECT INBOX")
	u := rc.mustOK("FETCH 1 ENVELOPE")
	want := `* 1 FETCH (ENVELOPE ("Thu, 15 Feb 2007 01:02:03 +0200" "=?UTF-8?B?w6l0w6k=?= report" ` +
		`(("Real Name" NIL "user" "domain")) ((NIL "@route" "user" "domain")) (("Real Name" NIL "user" "domain")) ` +
		`((NIL NIL "group" NIL) (NIL NIL "g1" "d1.org") ("=?ISO-8859-1?Q?Andr=E9?=" NIL "g2" "d2.org") (NIL NIL NIL NIL) (NIL NIL "group2" NIL) (NIL NIL "g3" "d3.org") (NIL NIL NIL NIL)) ` +
		`((NIL NIL "group" NIL) (NIL NIL NIL NIL) (NIL NIL "group2" NIL) (NIL NIL NIL NIL)) NIL NIL NIL))`
	if len(u) != 1 || u[0] != want {
		t.Errorf("ENVELOPE:\n got %q\nwant %q", u, want)
	}
	if u := rc.mustOK("SEARCH FROM user-from@domain.org"); !hasLine(u, "* SEARCH 2") {
		t.Errorf("SEARCH FROM across comments: %q", u)
	}
	if u := rc.mustOK("SEARCH TO groupname"); !hasLine(u, "* SEARCH") || hasLine(u, "* SEARCH 1") {
		t.Errorf("SEARCH TO of a name not there: %q", u)
	}
	if u := rc.mustOK("SEARCH TO group2"); !hasLine(u, "* SEARCH 1") {
		t.Errorf("SEARCH TO a group's name: %q", u)
	}
}

// TestFetchBinaryPartialOrigin: a partial BINARY answer is named with its
// origin, BINARY[1]<offset>, and holds the decoded octets from there.
func TestFetchBinaryPartialOrigin(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, "alice@example.org", "", "From: a@example.net\r\nContent-Type: text/plain\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n"+base64.StdEncoding.EncodeToString([]byte("0123456789abcdefghij"))+"\r\n")
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	rc.mustOK("SELECT INBOX")
	u := rc.mustOK("FETCH 1 (BINARY.PEEK[1]<10.5> BINARY.PEEK[1]<0.3>)")
	if !strings.Contains(u[0], "BINARY[1]<10> ~{5}\r\nabcde") || !strings.Contains(u[0], "BINARY[1]<0> ~{3}\r\n012") {
		t.Errorf("partial BINARY: %q", u[0])
	}
}

// TestMoveWithinMailbox: MOVE into the selected mailbox itself answers
// EXPUNGE, then EXISTS for the new copy, keeping the count.
func TestMoveWithinMailbox(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, "alice@example.org", "", testMessage(1))
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	rc.mustOK("SELECT INBOX")
	u := rc.mustOK("MOVE 1 INBOX")
	var rest []string
	for _, l := range u {
		if !strings.HasPrefix(l, "* OK [COPYUID") {
			rest = append(rest, l)
		}
	}
	if !slices.Equal(rest, []string{"* 1 EXPUNGE", "* 1 EXISTS", "* 1 RECENT"}) {
		t.Errorf("MOVE into the same mailbox: %q", u)
	}
	if u := rc.mustOK("UID FETCH 1:* UID"); len(u) != 1 || !strings.Contains(u[0], "UID 2") {
		t.Errorf("after the move: %q", u)
	}
}
