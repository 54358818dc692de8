package imapd

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/mailstore"
)

// status returns the mailbox's "MESSAGES n UIDNEXT m" through a fresh
// connection.
func (ts *testServer) status(t *testing.T, mailbox string) string {
	t.Helper()
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	u := rc.mustOK("STATUS %s (MESSAGES UIDNEXT)", mailbox)
	rc.mustOK("LOGOUT")
	return strings.Join(u, "\n")
}

// messagesIn returns n of "MESSAGES n".
func (ts *testServer) messagesIn(t *testing.T, mailbox string) string {
	t.Helper()
	m := regexp.MustCompile(`MESSAGES (\d+)`).FindStringSubmatch(ts.status(t, mailbox))
	if m == nil {
		t.Fatalf("STATUS %s without MESSAGES", mailbox)
	}
	return m[1]
}

// TestMultiAppend: several messages in one APPEND (RFC 3502) are stored
// together with their own flags and dates, and APPENDUID names them all
// (RFC 4315); a command that fails anywhere stores none of them.
func TestMultiAppend(t *testing.T) {
	ts := newTestServer(t)
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	m1, m2, m3 := testMessage(1), testMessage(2), testMessage(3)
	rc.send(fmt.Sprintf("A1 APPEND INBOX (\\Seen) {%d+}\r\n%s (\\Flagged) \"01-Feb-2020 10:00:00 +0100\" {%d+}\r\n%s {%d+}\r\n%s\r\n",
		len(m1), m1, len(m2), m2, len(m3), m3))
	_, d := rc.until("A1")
	if !regexp.MustCompile(`^OK \[APPENDUID \d+ 1:3\]`).MatchString(d) {
		t.Fatalf("MULTIAPPEND: %q", d)
	}
	rc.mustOK("ENABLE IMAP4rev2") // no \Recent
	rc.mustOK("SELECT INBOX")
	u := rc.mustOK("FETCH 1:3 (FLAGS INTERNALDATE BODY.PEEK[])")
	if len(u) != 3 {
		t.Fatalf("FETCH: %q", u)
	}
	for i, want := range []string{`FLAGS (\Seen)`, `FLAGS (\Flagged) INTERNALDATE " 1-Feb-2020 10:00:00 +0100"`, `FLAGS ()`} {
		if !strings.Contains(u[i], want) || !strings.Contains(u[i], []string{m1, m2, m3}[i]) {
			t.Errorf("message %d: %q, want %s and its body", i+1, u[i], want)
		}
	}
	// One message: APPENDUID names its UID alone.
	rc.send(fmt.Sprintf("A2 APPEND INBOX {%d+}\r\n%s\r\n", len(m1), m1))
	if _, d := rc.until("A2"); !regexp.MustCompile(`^OK \[APPENDUID \d+ 4\]`).MatchString(d) {
		t.Errorf("APPEND: %q", d)
	}

	// Failures: nothing is stored, and the connection stays in step.
	big := strings.Repeat("x", 1<<20+1)
	for _, tc := range []struct {
		name, cmd string
		conts     []string // sent after each "+"
		reply     string
	}{
		{"junk after the last message", fmt.Sprintf("B APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s junk\r\n", len(m1), m1, len(m2), m2), nil, "BAD"},
		{"second over APPENDLIMIT", fmt.Sprintf("B APPEND INBOX {%d+}\r\n%s {%d}\r\n", len(m1), m1, len(big)), nil, "NO [TOOBIG]"},
		{"missing mailbox", fmt.Sprintf("B APPEND Nope {%d}\r\n", len(m1)), nil, "NO [TRYCREATE]"},
		{"bad date in the second", fmt.Sprintf("B APPEND INBOX {%d+}\r\n%s \"99-Foo-2020 00:00:00 +0000\" {1+}\r\nx\r\n", len(m1), m1), nil, "BAD"},
		{"sync literals, third bad", fmt.Sprintf("B APPEND INBOX {%d}\r\n", len(m1)),
			[]string{fmt.Sprintf("%s {%d}\r\n", m1, len(m2)), m2 + " 99\r\n"}, "BAD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc.t = t
			rc.send(tc.cmd)
			conts := tc.conts
			for {
				l := rc.line()
				if strings.HasPrefix(l, "+") && len(conts) > 0 {
					rc.send(conts[0])
					conts = conts[1:]
					continue
				}
				if strings.HasPrefix(l, "B ") {
					if !strings.HasPrefix(l, "B "+tc.reply) {
						t.Fatalf("reply %q, want %s", l, tc.reply)
					}
					break
				}
			}
			rc.mustOK("NOOP")
			if n := ts.messagesIn(t, "INBOX"); n != "4" {
				t.Errorf("%s messages after a failed APPEND, want 4", n)
			}
		})
	}
	rc.t = t

	t.Run("over the message cap", func(t *testing.T) {
		rc.t = t
		var b strings.Builder
		b.WriteString("C APPEND INBOX")
		for i := 0; i <= maxAppendMessages; i++ {
			b.WriteString(" {1+}\r\nx")
		}
		b.WriteString("\r\n")
		rc.send(b.String())
		if _, d := rc.until("C"); !strings.HasPrefix(d, "NO [LIMIT]") {
			t.Fatalf("%d messages: %q", maxAppendMessages+1, d)
		}
		rc.mustOK("NOOP")
		if n := ts.messagesIn(t, "INBOX"); n != "4" {
			t.Errorf("%s messages, want 4", n)
		}
	})
	rc.t = t

	t.Run("connection dropped mid-command", func(t *testing.T) {
		dc := ts.raw(t)
		dc.login("alice@example.org", "alicepw")
		dc.send(fmt.Sprintf("D APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s {%d+}\r\n%s", len(m1), m1, len(m2), m2, len(m3)+10, m3))
		dc.conn.(*net.TCPConn).CloseWrite()
		// The server closes the connection once its session has ended.
		dc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(dc.r); err != nil {
			t.Fatalf("reading to the close: %v", err)
		}
		if n := ts.messagesIn(t, "INBOX"); n != "4" {
			t.Errorf("%s messages, want 4", n)
		}
	})

	t.Run("spool files do not outlive the command", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv("TMPDIR", dir)
		rc.t = t
		rc.send(fmt.Sprintf("E APPEND Archive {%d+}\r\n%s {%d+}\r\n%s\r\n", len(m1), m1, len(m2), m2))
		if _, d := rc.until("E"); !strings.HasPrefix(d, "OK") {
			t.Fatalf("APPEND: %q", d)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("left in TMPDIR: %v", ents)
		}
	})
}

// TestMultiAppendRollback: when the store fails part way through a
// MULTIAPPEND, the messages it stored are expunged again and the command
// answers NO with the store's reason.
func TestMultiAppendRollback(t *testing.T) {
	fs := &failingStore{}
	ts := newTestServer(t, withFailingStore(fs))
	watcher := ts.raw(t)
	watcher.login("alice@example.org", "alicepw")
	watcher.mustOK("SELECT INBOX")

	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	m := testMessage(1)
	for _, tc := range []struct {
		name  string
		err   error
		reply string
	}{
		{"over quota", mailstore.ErrOverQuota, "NO [OVERQUOTA]"},
		{"i/o error", fmt.Errorf("write /x/tmp/1: input/output error"), "NO [UNAVAILABLE]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc.t = t
			fs.mu.Lock()
			fs.appendsBeforeFail = 2
			fs.mu.Unlock()
			fs.setFail("Append", tc.err)
			defer fs.setFail("Append", nil)
			rc.send(fmt.Sprintf("A APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s {%d+}\r\n%s\r\n", len(m), m, len(m), m, len(m), m))
			_, d := rc.until("A")
			if !strings.HasPrefix(d, tc.reply) {
				t.Fatalf("reply %q, want %s", d, tc.reply)
			}
			if n := ts.messagesIn(t, "INBOX"); n != "0" {
				t.Errorf("%s messages left", n)
			}
		})
	}
	// The selected session was told of the messages and of their removal.
	u := watcher.mustOK("NOOP")
	if !hasLine(u, "EXPUNGE") {
		t.Errorf("watcher saw no EXPUNGE: %q", u)
	}
}

// TestCatenate: APPEND CATENATE (RFC 4469) builds messages from TEXT
// literals and IMAP URLs (RFC 5092) to the user's own messages and
// sections, streamed from the stored files; URLs to anything else are
// NO [BADURL], limits are NO [TOOBIG] or [LIMIT], and a failed command
// stores nothing.
func TestCatenate(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Hostname = "mail.example.org" })
	orig := "From: a@example.org\r\nSubject: parts\r\nMime-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n--b\r\nContent-Type: text/plain\r\n\r\nsecond part\r\n--b--\r\n"
	res := ts.deliver(t, "alice@example.org", "", orig)
	ts.deliver(t, "bob@example.org", "", testMessage(9))
	v := res.UIDValidity
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")

	ok := []struct{ name, parts, want string }{
		{"text and section", `TEXT {14+}` + "\r\nSubject: x\r\n\r\n" + fmt.Sprintf(` URL "/INBOX;UIDVALIDITY=%d/;UID=1/;SECTION=1"`, v), "Subject: x\r\n\r\nfirst part"},
		{"whole message", `URL "/INBOX/;UID=1"`, orig},
		{"header and mime", `URL "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(SUBJECT)" URL "/inbox/;uid=1/;section=2.MIME"`, "Subject: parts\r\n\r\nContent-Type: text/plain\r\n\r\n"},
		{"partial", `URL "/INBOX/;UID=1/;SECTION=2/;PARTIAL=7.4"`, "part"},
		{"partial beyond the end", `TEXT {1+}` + "\r\nx" + ` URL "/INBOX/;UID=1/;PARTIAL=4294967295.4294967295"`, "x"},
		{"absolute URL", `URL "imap://alice%40example.org;AUTH=*@MAIL.example.org:143/INBOX/;UID=1/;SECTION=TEXT"`,
			orig[strings.Index(orig, "\r\n\r\n")+4:]},
	}
	for i, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			rc.t = t
			_, d := rc.cmd("APPEND Drafts CATENATE (%s)", tc.parts)
			if !strings.HasPrefix(d, "OK [APPENDUID") {
				t.Fatalf("APPEND: %q", d)
			}
			rc.mustOK("EXAMINE Drafts")
			u := rc.mustOK("FETCH %d BODY.PEEK[]", i+1)
			if len(u) != 1 || !strings.HasSuffix(u[0], fmt.Sprintf("{%d}\r\n%s)", len(tc.want), tc.want)) {
				t.Errorf("stored %q, want %q", u, tc.want)
			}
		})
	}
	rc.t = t

	t.Run("relative to the selected mailbox", func(t *testing.T) {
		rc.t = t
		rc.mustOK("SELECT INBOX")
		if _, d := rc.cmd(`APPEND Drafts CATENATE (URL ";UID=1/;SECTION=1")`); !strings.HasPrefix(d, "OK") {
			t.Fatalf("APPEND: %q", d)
		}
		rc.mustOK("UNSELECT")
		if _, d := rc.cmd(`APPEND Drafts CATENATE (URL ";UID=1/;SECTION=1")`); !strings.HasPrefix(d, "NO [BADURL ;UID=1/;SECTION=1]") {
			t.Fatalf("APPEND without a selection: %q", d)
		}
	})
	rc.t = t
	stored := fmt.Sprint(len(ok) + 1)

	many := func(part string, n int) string {
		return strings.TrimSpace(strings.Repeat(part+" ", n))
	}
	big := strings.Repeat("y", 400<<10)
	ts.deliver(t, "alice@example.org", "Archive", "Subject: big\r\n\r\n"+big)

	bad := []struct{ name, cmd, reply string }{
		{"other user", `APPEND Drafts CATENATE (URL "imap://bob%40example.org@mail.example.org/INBOX/;UID=1")`, "NO [BADURL imap://bob%40example.org@mail.example.org/INBOX/;UID=1]"},
		{"other server", `APPEND Drafts CATENATE (URL "imap://alice%40example.org@other.example/INBOX/;UID=1")`, "NO [BADURL"},
		{"no user", `APPEND Drafts CATENATE (URL "imap://mail.example.org/INBOX/;UID=1")`, "NO [BADURL"},
		{"missing message", `APPEND Drafts CATENATE (URL "/INBOX/;UID=99")`, "NO [BADURL"},
		{"missing mailbox", `APPEND Drafts CATENATE (URL "/Nope/;UID=1")`, "NO [BADURL"},
		{"traversal", `APPEND Drafts CATENATE (URL "/../bob%40example.org/INBOX/;UID=1")`, "NO [BADURL"},
		{"wrong uidvalidity", fmt.Sprintf(`APPEND Drafts CATENATE (URL "/INBOX;UIDVALIDITY=%d/;UID=1")`, v+1), "NO [BADURL"},
		{"missing section", `APPEND Drafts CATENATE (URL "/INBOX/;UID=1/;SECTION=3")`, "NO [BADURL"},
		{"partial over 32 bits", `APPEND Drafts CATENATE (URL "/INBOX/;UID=1/;PARTIAL=99999999999")`, "NO [BADURL"},
		{"urlauth", `APPEND Drafts CATENATE (URL "/INBOX/;UID=1;URLAUTH=anonymous")`, "NO [BADURL"},
		{"not a URL", `APPEND Drafts CATENATE (URL "http://example.org/")`, "NO [BADURL"},
		{"bad URL before text", "APPEND Drafts CATENATE (URL \"/INBOX/;UID=99\" TEXT {1+}\r\nx) CATENATE (TEXT {1+}\r\ny)", "NO [BADURL"},
		{"too many parts", "APPEND Drafts CATENATE (" + many("TEXT {1+}\r\nx", maxCatenateParts+1) + ")", "NO [LIMIT]"},
		{"too many URL parts", "APPEND Drafts CATENATE (" + many(`URL "/INBOX/;UID=1/;PARTIAL=0.1"`, maxCatenateParts+1) + ")", "NO [LIMIT]"},
		{"over APPENDLIMIT", "APPEND Drafts CATENATE (" + many(`URL "/Archive/;UID=1"`, 3) + ")", "NO [TOOBIG]"},
		{"empty", "APPEND Drafts CATENATE ()", "BAD"},
		{"trycreate first", `APPEND Nope CATENATE (URL "/INBOX/;UID=99")`, "NO [TRYCREATE]"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			rc.t = t
			_, d := rc.cmd("%s", tc.cmd)
			if !strings.HasPrefix(d, tc.reply) {
				t.Fatalf("reply %q, want %s", d, tc.reply)
			}
			rc.mustOK("NOOP")
			if n := ts.messagesIn(t, "Drafts"); n != stored {
				t.Errorf("%s messages in Drafts, want %s", n, stored)
			}
		})
	}
	rc.t = t

	t.Run("within a MULTIAPPEND", func(t *testing.T) {
		rc.t = t
		_, d := rc.cmd("APPEND Drafts CATENATE (TEXT {3+}\r\nA\r\n) {3+}\r\nB\r\n CATENATE (URL \"/INBOX/;UID=1/;SECTION=2\")")
		if !strings.HasPrefix(d, "OK [APPENDUID") || !strings.Contains(d, ":") {
			t.Fatalf("APPEND: %q", d)
		}
	})
}

// TestMultiAppendCatenateImaplib: Python's imaplib, sending MULTIAPPEND
// and CATENATE by hand over its connection (it has no helper for
// either), gets them stored and the APPENDUID uid-set.
func TestMultiAppendCatenateImaplib(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	ts := newTestServer(t)
	script := filepath.Join(t.TempDir(), "multi.py")
	if err := os.WriteFile(script, []byte(`
import imaplib, sys
host, port = sys.argv[1].rsplit(":", 1)
m = imaplib.IMAP4(host, int(port))
m.login("alice@example.org", "alicepw")
caps = m.capability()[1][0].decode().split()
print("caps", "MULTIAPPEND" in caps, "CATENATE" in caps)

def command(parts):
    # parts: strings sent as they are, bytes sent as synchronizing literals.
    tag = m._new_tag()
    line = tag
    for p in parts:
        if isinstance(p, bytes):
            m.send(line + b" {%d}\r\n" % len(p))
            while True:
                r = m._get_line()
                if r.startswith(b"+"):
                    break
                if r.startswith(tag):
                    return r
            line = p
        else:
            line += b" " + p.encode()
    m.send(line + b"\r\n")
    while True:
        r = m._get_line()
        if r.startswith(tag):
            return r

a = b"From: a@example.org\r\nSubject: one\r\n\r\nbody one\r\n"
b = b"From: a@example.org\r\nSubject: two\r\n\r\nbody two\r\n"
print("multi", command(["APPEND", "INBOX", "(\\Seen)", a, b]))
print("catenate", command(["APPEND", "INBOX", "CATENATE", "(TEXT", b"Subject: three\r\n\r\n", 'URL "/INBOX/;UID=2/;SECTION=TEXT")']))
m.select("INBOX")
typ, data = m.fetch("1:3", "(FLAGS BODY.PEEK[])")
print("fetch", typ, data)
m.logout()
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, script, ts.addr).CombinedOutput()
	t.Logf("imaplib:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"caps True True", "multi b'", "OK [APPENDUID", " 1:2]", "catenate b'", " 3]",
		`Subject: three\r\n\r\nbody two\r\n`, `1 (FLAGS (\\Recent \\Seen)`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("imaplib output lacks %q", want)
		}
	}
}

// TestCatenateStreams: a CATENATE of a large stored message is streamed
// through the spool into the store, never held whole in memory (counted
// with runtime.MemStats.TotalAlloc, with a wide margin).
func TestCatenateStreams(t *testing.T) {
	const size = 16 << 20
	ts := newTestServer(t, func(o *Options) { o.MaxAppendSize = 64 << 20 })
	body := strings.Repeat(strings.Repeat("z", 998)+"\r\n", size/1000)
	ts.deliver(t, "alice@example.org", "", "Subject: big\r\n\r\n"+body)
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	rc.mustOK("NOOP")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, d := rc.cmd(`APPEND Drafts CATENATE (URL "/INBOX/;UID=1" URL "/INBOX/;UID=1/;SECTION=TEXT")`); !strings.HasPrefix(d, "OK") {
		t.Fatalf("APPEND: %q", d)
	}
	runtime.ReadMemStats(&after)
	if n := ts.messagesIn(t, "Drafts"); n != "1" {
		t.Fatalf("%s messages", n)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("APPEND of %d bytes by CATENATE: %d bytes allocated", 2*size, alloc)
	if alloc > size/2 {
		t.Errorf("APPEND of a %d-byte CATENATE allocated %d bytes", 2*size, alloc)
	}
}

// TestAppendSpoolOutgrowsMemory: a command whose messages outgrow the
// in-memory spool part way through one of them stores every message
// intact, before and after the switch to a temporary file.
func TestAppendSpoolOutgrowsMemory(t *testing.T) {
	ts := newTestServer(t)
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	mk := func(i, size int) string {
		head := fmt.Sprintf("From: a@example.net\r\nSubject: spool %d\r\n\r\n", i)
		line := strings.Repeat(string(rune('a'+i)), 78) + "\r\n"
		return head + strings.Repeat(line, (size-len(head))/len(line))
	}
	msgs := []string{mk(0, spoolInMemory/2), mk(1, spoolInMemory), mk(2, 3000)}
	cmd := "A1 APPEND INBOX"
	for _, m := range msgs {
		cmd += fmt.Sprintf(" {%d+}\r\n%s", len(m), m)
	}
	rc.send(cmd + "\r\n")
	if _, d := rc.until("A1"); !strings.HasPrefix(d, "OK") {
		t.Fatalf("APPEND: %q", d)
	}
	rc.mustOK("SELECT INBOX")
	for i, m := range msgs {
		u := rc.mustOK("FETCH %d BODY.PEEK[]", i+1)
		if len(u) != 1 || !strings.Contains(u[0], fmt.Sprintf("{%d}\r\n%s)", len(m), m)) {
			t.Errorf("message %d (%d bytes) not stored intact", i+1, len(m))
		}
	}
}
