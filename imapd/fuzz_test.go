package imapd

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// panicLog records log lines that show a recovered panic in a session.
type panicLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (p *panicLog) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if bytes.Contains(b, []byte("panic")) {
		p.buf.Write(b)
	}
	return len(b), nil
}

func (p *panicLog) check(t *testing.T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.buf.Len() > 0 {
		t.Fatalf("server panicked:\n%s", p.buf.String())
	}
}

func fuzzServer(f *testing.F) (*testServer, *panicLog) {
	pl := &panicLog{}
	ts := newTestServer(f, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(pl, &slog.HandlerOptions{Level: slog.LevelError}))
	})
	return ts, pl
}

// fuzzConn is a raw connection that reconnects when the server hangs up
// (which it may do on purpose, e.g. after a refused LITERAL+ literal).
type fuzzConn struct {
	ts    *testServer
	conn  net.Conn
	r     *bufio.Reader
	setup []string
	n     int
}

func (fc *fuzzConn) ensure(t *testing.T) {
	if fc.conn != nil {
		return
	}
	conn, err := net.Dial("tcp", fc.ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	fc.conn, fc.r = conn, bufio.NewReader(conn)
	if _, err := fc.r.ReadString('\n'); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	for _, c := range fc.setup {
		if d, ok := fc.do(t, c); !ok || !strings.HasPrefix(d, "OK") {
			t.Fatalf("setup %q: %q", c, d)
		}
	}
}

// do sends raw (one or more lines, without the tag) and waits for the tagged
// reply. ok is false when the server closed the connection.
func (fc *fuzzConn) do(t *testing.T, raw string) (string, bool) {
	fc.ensure(t)
	fc.n++
	tag := fmt.Sprintf("F%d", fc.n)
	fc.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fc.conn.Write([]byte(tag + " " + raw + "\r\n")); err != nil {
		fc.reset()
		return "", false
	}
	for {
		l, err := fc.r.ReadString('\n')
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				fc.reset()
				t.Fatalf("no reply to %q", raw)
			}
			fc.reset()
			return "", false
		}
		if strings.HasPrefix(l, tag+" ") {
			return strings.TrimPrefix(l, tag+" "), true
		}
		if strings.HasPrefix(l, "+") {
			// A continuation request (AUTHENTICATE without an initial
			// response): cancel, as RFC 9051 §6.2.2 lets the client.
			fc.conn.Write([]byte("*\r\n"))
			continue
		}
		if strings.HasPrefix(l, "* BYE") {
			fc.reset()
			return "", false
		}
	}
}

func (fc *fuzzConn) reset() {
	if fc.conn != nil {
		fc.conn.Close()
	}
	fc.conn = nil
}

// FuzzMailboxName feeds arbitrary mailbox names (as literals, so any byte
// can appear) through every command that takes one. The server must answer
// each, never panic, and never let a name reach bob's mailboxes.
func FuzzMailboxName(f *testing.F) {
	for _, s := range []string{"INBOX", "inbox", "a/b/c", "../bob@example.org/Secret", "~bob", "/", "//", ".", "..",
		"&AMQ-rger", "&", "&-", "Größe", "a\x00b", "*", "%", "Secret", "INBOX/../..", strings.Repeat("x/", 300), "\r\n"} {
		f.Add(s)
	}
	ts, pl := fuzzServer(f)
	bob := &fuzzConn{ts: ts, setup: []string{"LOGIN bob@example.org bobpw"}}
	alice := &fuzzConn{ts: ts, setup: []string{"LOGIN alice@example.org alicepw"}}
	f.Fuzz(func(t *testing.T, name string) {
		if len(name) > 4000 {
			return
		}
		bob.do(t, "CREATE Secret")
		lit := fmt.Sprintf("{%d+}\r\n%s", len(name), name)
		for _, c := range []string{
			"CREATE " + lit, "SELECT " + lit, "EXAMINE " + lit, "STATUS " + lit + " (MESSAGES UIDNEXT)",
			"SUBSCRIBE " + lit, "LIST \"\" " + lit, "LIST " + lit + " *", "RENAME " + lit + " Renamed",
			"RENAME Renamed " + lit, "COPY 1 " + lit, "DELETE " + lit, "DELETE Renamed", "UNSUBSCRIBE " + lit,
		} {
			alice.do(t, c)
		}
		pl.check(t)
		if d, _ := bob.do(t, "STATUS Secret (MESSAGES)"); !strings.HasPrefix(d, "OK") {
			t.Fatalf("bob's mailbox gone after name %q: %q", name, d)
		}
	})
}

// FuzzCommandLine sends one arbitrary command line in each state and checks
// the server still answers the next command (or closed the connection on
// purpose), without panicking.
func FuzzCommandLine(f *testing.F) {
	for _, s := range []string{"", "NOOP", "FETCH 1:* (FLAGS BODY[])", "UID FETCH * BODY.PEEK[1.2.MIME]<0.10>",
		"STORE 1 +FLAGS (\\Deleted)", "SEARCH OR (NOT 1) UID 1:* CHARSET UTF-8", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"*\" \"%\") RETURN (STATUS (MESSAGES SIZE DELETED))",
		"APPEND INBOX {3+}", "ID (\"name\" NIL)", "ENABLE IMAP4rev2 UTF8=ACCEPT", "MOVE 1:* Trash", "UID EXPUNGE 1:*",
		"COPY $ Archive", "SEARCH RETURN (SAVE) ALL", "STATUS INBOX (DELETED-STORAGE RECENT APPENDLIMIT)", "AUTHENTICATE PLAIN =",
		"SELECT INBOX (CONDSTORE)", "FETCH 1 (MODSEQ)", "UID STORE 1 (UNCHANGEDSINCE 1) FLAGS ()", "IDLE", "\"", "(", "{5}",
		"FETCH 4294967295 FLAGS", "FETCH 0 FLAGS", "BINARY[1]", "FETCH 1 BINARY[0]", "CLOSE", "UNSELECT", "LOGOUT",
		`LIST "" "&AC8-etc"`, "SEARCH " + strings.Repeat("NOT ", 101) + "ALL", "SEARCH (((ALL)))", "FETCH 9 FLAGS", "STATUS INBOX ()",
		"AUTHENTICATE PLAIN !!!", "FETCH 1 BODY[]<99999999999.1>",
		"ENABLE CONDSTORE QRESYNC", "SELECT INBOX (QRESYNC (1 1 1:* (1:3 1:3)))", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)",
		`SEARCH RETURN (MIN MAX) MODSEQ "/flags/\\seen" all 1`, "STATUS INBOX (HIGHESTMODSEQ)", "STORE 1:* (UNCHANGEDSINCE 0) +FLAGS.SILENT (\\Seen)",
		"GETQUOTAROOT INBOX", `GETQUOTA ""`, `SETQUOTA "" (STORAGE 1 MESSAGE 2)`, "SETQUOTA x (" + strings.Repeat("A 1 ", 20) + ")",
		"FETCH 1:* (EMAILID THREADID)", "SEARCH EMAILID E1 THREADID T1", "SEARCH NOT EMAILID E0", "STATUS INBOX (MAILBOXID)",
		`LIST "" * RETURN (STATUS (MAILBOXID))`, "CREATE fuzz-mailbox",
		"NOTIFY SET STATUS (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (From)]<0.10>) MessageExpunge)) (subtree (INBOX Archive) (FlagChange))",
		"NOTIFY SET (personal NONE)", "NOTIFY NONE", "NOTIFY SET (inboxes (MailboxName))", "NOTIFY SET " + strings.Repeat("(personal (MessageNew)) ", 40),
		"SORT RETURN (UPDATE CONTEXT PARTIAL 1:5) (REVERSE SUBJECT) UTF-8 ALL", "UID SORT RETURN (UPDATE COUNT) (DATE FROM) UTF-8 SEEN",
		`CANCELUPDATE "T1" "x"`} {
		f.Add(s)
	}
	ts, pl := fuzzServer(f)
	for i := 1; i <= 3; i++ {
		ts.deliver(f, "alice@example.org", "", testMessage(i))
	}
	states := []*fuzzConn{
		{ts: ts},
		{ts: ts, setup: []string{"LOGIN alice@example.org alicepw"}},
		{ts: ts, setup: []string{"LOGIN alice@example.org alicepw", "SELECT INBOX"}},
		{ts: ts, setup: []string{"LOGIN alice@example.org alicepw", "EXAMINE INBOX"}},
		{ts: ts, setup: []string{"LOGIN alice@example.org alicepw", "ENABLE QRESYNC", "SELECT INBOX"}},
	}
	f.Fuzz(func(t *testing.T, line string) {
		line = strings.NewReplacer("\r", "", "\n", "").Replace(line)
		up := strings.ToUpper(line)
		if len(line) > 8000 || strings.Contains(up, "IDLE") || strings.Contains(up, "COMPRESS") || literalRE.MatchString(line) {
			return // IDLE waits for DONE, a literal for its bytes, COMPRESS switches to deflate, by design
		}
		for _, fc := range states {
			fc.do(t, line)
			if d, ok := fc.do(t, "NOOP"); ok && !strings.HasPrefix(d, "OK") {
				t.Fatalf("NOOP after %q: %q", line, d)
			}
		}
		pl.check(t)
	})
}
