package imapd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// errorLog keeps the log lines at Error level: a client mistake must never
// produce one (they mean "our failure" to an operator).
type errorLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *errorLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *errorLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.buf.String()
	l.buf.Reset()
	return s
}

// scriptConn runs one raw exchange: chunks are sent one after another, each
// after the server's "+" continuation request for the one before; the reply
// is every line up to the tagged one (or the connection's end).
type scriptConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialScript(t *testing.T, addr string, setup []string) *scriptConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	sc := &scriptConn{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if l, err := sc.r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting: %q %v", l, err)
	}
	for i, c := range setup {
		tag := fmt.Sprintf("S%d", i)
		lines, closed := sc.run(tag, []string{tag + " " + c + "\r\n"})
		if closed || !strings.HasPrefix(lines[len(lines)-1], tag+" OK") {
			t.Fatalf("setup %q: %q", c, lines)
		}
	}
	return sc
}

func (sc *scriptConn) run(tag string, chunks []string) (lines []string, closed bool) {
	sc.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := sc.conn.Write([]byte(chunks[0])); err != nil {
		return nil, true
	}
	chunks = chunks[1:]
	for {
		l, err := sc.r.ReadString('\n')
		if err != nil {
			return lines, true
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		switch {
		case strings.HasPrefix(l, "+") && len(chunks) > 0:
			if _, err := sc.conn.Write([]byte(chunks[0])); err != nil {
				return lines, true
			}
			chunks = chunks[1:]
		case strings.HasPrefix(l, tag+" "):
			return lines, false
		}
	}
}

// TestClientMistakesAreNotServerBugs feeds malformed and out-of-range
// commands in every state. Each must get BAD or NO (never NO [SERVERBUG] or
// [UNAVAILABLE], which say the server failed) and leave no error log line.
func TestClientMistakesAreNotServerBugs(t *testing.T) {
	el := &errorLog{}
	ts := newTestServer(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(el, &slog.HandlerOptions{Level: slog.LevelError}))
	})
	for i := 1; i <= 3; i++ {
		ts.deliver(t, "alice@example.org", "", testMessage(i))
	}
	login := "LOGIN alice@example.org alicepw"
	states := []struct {
		name  string
		setup []string
	}{
		{"notauth", nil},
		{"auth", []string{login}},
		{"selected", []string{login, "SELECT INBOX"}},
	}
	deep := func(n int, unit string) string { return strings.Repeat(unit, n) }
	cases := []struct {
		name   string
		chunks []string // the first starts after "<tag> "
		want   string   // "BAD", "NO", "OK" or "" (any of them)
		states []string // nil: every state
		has    string   // a response line must contain it
	}{
		// Parser-level mistakes, any state.
		{name: "login no args", chunks: []string{"LOGIN\r\n"}, want: "BAD"},
		{name: "login one arg", chunks: []string{"LOGIN a\r\n"}, want: "BAD"},
		{name: "login trailing", chunks: []string{`LOGIN "a" "b" c` + "\r\n"}, want: "BAD"},
		{name: "login nul", chunks: []string{"LOGIN {3+}\r\na\x00b c\r\n"}},
		{name: "login 8bit", chunks: []string{"LOGIN \"\xff\xfe\" x\r\n"}},
		{name: "login big literal", chunks: []string{"LOGIN {999999999}\r\n"}},
		{name: "authenticate none", chunks: []string{"AUTHENTICATE\r\n"}, want: "BAD"},
		{name: "authenticate unknown", chunks: []string{"AUTHENTICATE FOO\r\n"}},
		{name: "authenticate bad base64", chunks: []string{"AUTHENTICATE PLAIN !!!\r\n"}},
		{name: "authenticate bad plain", chunks: []string{"AUTHENTICATE PLAIN AAAA\r\n"}},
		{name: "authenticate cancel", chunks: []string{"AUTHENTICATE PLAIN\r\n", "*\r\n"}},
		{name: "authenticate garbage response", chunks: []string{"AUTHENTICATE PLAIN\r\n", "%%%\r\n"}},
		{name: "capability args", chunks: []string{"CAPABILITY x\r\n"}, want: "BAD"},
		{name: "noop args", chunks: []string{"NOOP x\r\n"}, want: "BAD"},
		{name: "id missing", chunks: []string{"ID\r\n"}, want: "BAD"},
		{name: "id open", chunks: []string{"ID (\r\n"}, want: "BAD"},
		{name: "id odd", chunks: []string{`ID ("a")` + "\r\n"}, want: "BAD"},
		{name: "id three", chunks: []string{`ID ("a" "b" "c")` + "\r\n"}, want: "BAD"},
		{name: "starttls args", chunks: []string{"STARTTLS x\r\n"}, want: "BAD"},
		{name: "enable none", chunks: []string{"ENABLE\r\n"}},
		{name: "enable unknown", chunks: []string{"ENABLE FOO\r\n"}},
		{name: "bad quoted", chunks: []string{"LIST \"\" \"a\\q\"\r\n"}},
		{name: "literal size junk", chunks: []string{"LIST \"\" {x}\r\n"}},
		{name: "literal size huge", chunks: []string{"LIST \"\" {99999999999999999999}\r\n"}},
		{name: "namespace args", chunks: []string{"NAMESPACE x\r\n"}, want: "BAD"},

		// Mailbox names and LIST.
		{name: "select none", chunks: []string{"SELECT\r\n"}, want: "BAD"},
		{name: "select bad utf7", chunks: []string{`SELECT "&AC8-etc"` + "\r\n"}, want: "NO"},
		{name: "select unterminated utf7", chunks: []string{`SELECT "&Jjo"` + "\r\n"}, want: "NO"},
		{name: "select lone amp", chunks: []string{"SELECT &\r\n"}, want: "NO"},
		{name: "select params", chunks: []string{"SELECT INBOX (FOO)\r\n"}, want: "BAD"},
		{name: "select empty", chunks: []string{`SELECT ""` + "\r\n"}, want: "NO"},
		{name: "examine nul", chunks: []string{"EXAMINE {3+}\r\na\x00b\r\n"}},
		{name: "create bad utf7", chunks: []string{`CREATE "&AC8-"` + "\r\n"}, want: "NO"},
		{name: "create empty", chunks: []string{`CREATE ""` + "\r\n"}, want: "NO"},
		{name: "create 8bit", chunks: []string{"CREATE \"a\xffb\"\r\n"}},
		{name: "create long", chunks: []string{"CREATE " + deep(1000, "ab/") + "\r\n"}, want: "NO"},
		{name: "delete empty", chunks: []string{`DELETE ""` + "\r\n"}, want: "NO"},
		{name: "rename one", chunks: []string{"RENAME a\r\n"}, want: "BAD"},
		{name: "rename bad utf7", chunks: []string{`RENAME "&AC8-" x` + "\r\n"}, want: "NO"},
		{name: "rename to empty", chunks: []string{`RENAME INBOX ""` + "\r\n"}, want: "NO"},
		{name: "subscribe bad utf7", chunks: []string{`SUBSCRIBE "&AC8-"` + "\r\n"}, want: "NO"},
		{name: "unsubscribe none", chunks: []string{"UNSUBSCRIBE\r\n"}, want: "BAD"},
		{name: "list pattern bad utf7", chunks: []string{`LIST "" "&AC8-etc"` + "\r\n"}, want: "OK"},
		{name: "list ref bad utf7", chunks: []string{`LIST "&AC8-" *` + "\r\n"}, want: "NO"},
		{name: "list patterns bad utf7", chunks: []string{`LIST "" ("*" "&Jjo")` + "\r\n"}, want: "OK"},
		{name: "lsub bad utf7", chunks: []string{`LSUB "" "&AC8-etc"` + "\r\n"}, want: "OK"},
		{name: "list select unknown", chunks: []string{`LIST (FOO) "" *` + "\r\n"}, want: "BAD"},
		{name: "list return unknown", chunks: []string{`LIST "" * RETURN (FOO)` + "\r\n"}, want: "BAD"},
		{name: "list return status unknown", chunks: []string{`LIST "" * RETURN (STATUS (FOO))` + "\r\n"}, want: "BAD"},
		{name: "list empty patterns", chunks: []string{`LIST "" ()` + "\r\n"}, want: "BAD"},
		{name: "list recursive alone", chunks: []string{`LIST (RECURSIVEMATCH) "" *` + "\r\n"}, want: "BAD"},
		{name: "status unknown item", chunks: []string{"STATUS INBOX (FOO)\r\n"}, want: "BAD"},
		{name: "status no items", chunks: []string{"STATUS INBOX ()\r\n"}, want: "BAD"},
		{name: "status no list", chunks: []string{"STATUS INBOX\r\n"}, want: "BAD"},
		{name: "status bad utf7", chunks: []string{`STATUS "&AC8-" (MESSAGES)` + "\r\n"}, want: "NO"},
		{name: "status missing", chunks: []string{"STATUS nosuch (MESSAGES)\r\n"}, want: "NO"},

		// APPEND.
		{name: "append bad flag", chunks: []string{"APPEND INBOX (\\Bogus) {3+}\r\nabc\r\n"}},
		{name: "append recent", chunks: []string{"APPEND INBOX (\\Recent) {3+}\r\nabc\r\n"}},
		{name: "append bad keyword", chunks: []string{"APPEND INBOX (a]b) {3+}\r\nabc\r\n"}},
		{name: "append unclosed flags", chunks: []string{"APPEND INBOX (\\Seen {3+}\r\nabc\r\n"}},
		{name: "append bad date", chunks: []string{`APPEND INBOX "bad date" {3+}` + "\r\nabc\r\n"}, want: "BAD"},
		{name: "append feb 31", chunks: []string{`APPEND INBOX "31-Feb-2020 00:00:00 +0000" {3+}` + "\r\nabc\r\n"}, want: "BAD"},
		{name: "append bad zone", chunks: []string{`APPEND INBOX " 1-Jan-2020 00:00:00 +9999" {3+}` + "\r\nabc\r\n"}},
		{name: "append bad utf7", chunks: []string{`APPEND "&AC8-" {3+}` + "\r\nabc\r\n"}, want: "NO"},
		{name: "append missing mailbox", chunks: []string{"APPEND nosuch {3+}\r\nabc\r\n"}, want: "NO"},
		{name: "append no literal", chunks: []string{`APPEND INBOX "abc"` + "\r\n"}, want: "BAD"},
		{name: "append sync refused", chunks: []string{"APPEND INBOX {999999999}\r\n"}, want: "NO"},
		{name: "append trailing", chunks: []string{"APPEND INBOX {3+}\r\nabc x\r\n"}, want: "BAD"},

		// Selected-state commands.
		{name: "fetch no items", chunks: []string{"FETCH 1\r\n"}, want: "BAD"},
		{name: "fetch unknown item", chunks: []string{"FETCH 1 (FOO)\r\n"}, want: "BAD"},
		{name: "fetch zero", chunks: []string{"FETCH 0 FLAGS\r\n"}, want: "BAD"},
		{name: "fetch beyond exists", chunks: []string{"FETCH 999 FLAGS\r\n"}, want: "BAD", states: []string{"selected"}},
		{name: "fetch range beyond exists", chunks: []string{"FETCH 2:999 FLAGS\r\n"}, want: "BAD", states: []string{"selected"}},
		{name: "fetch from beyond to star", chunks: []string{"FETCH 999:* FLAGS\r\n"}, want: "BAD", states: []string{"selected"}},
		{name: "fetch 2^32", chunks: []string{"FETCH 4294967296 FLAGS\r\n"}, want: "BAD"},
		{name: "uid fetch beyond", chunks: []string{"UID FETCH 99 FLAGS\r\n"}, want: "OK", states: []string{"selected"}},
		{name: "fetch star", chunks: []string{"FETCH * FLAGS\r\n"}, want: "OK", states: []string{"selected"}},
		{name: "fetch section zero", chunks: []string{"FETCH 1 BODY[0]\r\n"}},
		{name: "fetch section mime top", chunks: []string{"FETCH 1 BODY[MIME]\r\n"}},
		{name: "fetch section text mime", chunks: []string{"FETCH 1 BODY[TEXT.MIME]\r\n"}},
		{name: "fetch empty header list", chunks: []string{"FETCH 1 BODY[HEADER.FIELDS ()]\r\n"}},
		{name: "fetch partial zero", chunks: []string{"FETCH 1 BODY[]<10.0>\r\n"}},
		{name: "fetch partial huge", chunks: []string{"FETCH 1 BODY[]<4294967295.4294967295>\r\n"}},
		{name: "fetch partial beyond 32 bits", chunks: []string{"FETCH 1 BODY.PEEK[]<99999999999.1>\r\n"}, want: "OK", states: []string{"selected"}, has: "BODY[]<99999999999> {0}"},
		{name: "fetch missing part", chunks: []string{"FETCH 1 BODY[9]\r\n"}},
		{name: "fetch deep part", chunks: []string{"FETCH 1 BODY[1.2.3.4.5.6.7.8]\r\n"}},
		{name: "fetch binary missing part", chunks: []string{"FETCH 1 BINARY[9]\r\n"}},
		{name: "fetch binary size", chunks: []string{"FETCH 1 BINARY.SIZE[1.2]\r\n"}},
		{name: "fetch changedsince 0", chunks: []string{"FETCH 1 (FLAGS) (CHANGEDSINCE 0)\r\n"}, want: "BAD"},
		{name: "fetch vanished without qresync", chunks: []string{"UID FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n"}, want: "BAD"},
		{name: "store no flags", chunks: []string{"STORE 1 +FLAGS\r\n"}, want: "BAD"},
		{name: "store unknown op", chunks: []string{"STORE 1 FOO (\\Seen)\r\n"}, want: "BAD"},
		{name: "store bad system flag", chunks: []string{"STORE 1 FLAGS (\\Bogus)\r\n"}},
		{name: "store recent", chunks: []string{"STORE 1 +FLAGS (\\Recent)\r\n"}},
		{name: "store quoted flag", chunks: []string{`STORE 1 FLAGS ("seen")` + "\r\n"}, want: "BAD"},
		{name: "store bad keyword", chunks: []string{"STORE 1 FLAGS (a]b)\r\n"}},
		{name: "store beyond exists", chunks: []string{"STORE 999 +FLAGS (\\Seen)\r\n"}, want: "BAD", states: []string{"selected"}},
		{name: "copy beyond exists", chunks: []string{"COPY 999 INBOX\r\n"}, want: "BAD", states: []string{"selected"}},
		{name: "move beyond exists", chunks: []string{"MOVE 2:999 INBOX\r\n"}, want: "BAD", states: []string{"selected"}},
		{name: "copy bad utf7", chunks: []string{`COPY 1 "&AC8-"` + "\r\n"}, want: "NO"},
		{name: "move empty name", chunks: []string{`MOVE 1 ""` + "\r\n"}, want: "NO", states: []string{"selected"}},
		{name: "copy to missing", chunks: []string{"COPY 1 nosuch\r\n"}, want: "NO", states: []string{"selected"}},
		{name: "search nothing", chunks: []string{"SEARCH\r\n"}, want: "BAD"},
		{name: "search not alone", chunks: []string{"SEARCH NOT\r\n"}, want: "BAD"},
		{name: "search bad date", chunks: []string{"SEARCH SINCE 31-Feb-2020\r\n"}, want: "BAD"},
		{name: "search junk date", chunks: []string{"SEARCH SINCE foo\r\n"}, want: "BAD"},
		{name: "search big year", chunks: []string{"SEARCH BEFORE 1-Jan-99999\r\n"}, want: "BAD"},
		{name: "search larger junk", chunks: []string{"SEARCH LARGER x\r\n"}, want: "BAD"},
		{name: "search larger overflow", chunks: []string{"SEARCH LARGER 99999999999999999999\r\n"}, want: "BAD"},
		{name: "search uid junk", chunks: []string{"SEARCH UID x\r\n"}, want: "BAD"},
		{name: "search bad seqset", chunks: []string{"SEARCH 1:x\r\n"}, want: "BAD"},
		{name: "search beyond exists", chunks: []string{"SEARCH 99\r\n"}, want: "OK", states: []string{"selected"}},
		{name: "search charset", chunks: []string{"SEARCH CHARSET FOO ALL\r\n"}, want: "NO", states: []string{"selected"}},
		{name: "search header short", chunks: []string{"SEARCH HEADER Subject\r\n"}, want: "BAD"},
		{name: "search keyword system", chunks: []string{"SEARCH KEYWORD \\Seen\r\n"}},
		{name: "search keyword bad", chunks: []string{"SEARCH KEYWORD a]b\r\n"}},
		{name: "search open paren", chunks: []string{"SEARCH (\r\n"}, want: "BAD"},
		{name: "search empty parens", chunks: []string{"SEARCH ()\r\n"}, want: "BAD"},
		{name: "search modseq bad entry type", chunks: []string{"SEARCH MODSEQ \"/flags/\\\\seen\" both 1\r\n"}, want: "BAD"},
		{name: "store unknown modifier", chunks: []string{"STORE 1 (CHANGEDSINCE 1) +FLAGS (\\Seen)\r\n"}, want: "BAD"},
		{name: "select qresync before enable", chunks: []string{"SELECT INBOX (QRESYNC (1 1))\r\n"}, want: "BAD"},
		{name: "search return unknown", chunks: []string{"SEARCH RETURN (FOO) ALL\r\n"}, want: "BAD"},
		{name: "search younger junk", chunks: []string{"SEARCH YOUNGER x\r\n"}, want: "BAD"},
		{name: "search senton bad month", chunks: []string{"SEARCH SENTON 1-Foo-2020\r\n"}, want: "BAD"},
		{name: "search deep not", chunks: []string{"SEARCH " + deep(50000, "NOT ") + "ALL\r\n"}, want: "BAD"},
		{name: "search deep parens", chunks: []string{"SEARCH " + deep(50000, "(") + "ALL" + deep(50000, ")") + "\r\n"}, want: "BAD"},
		{name: "search deep or", chunks: []string{"SEARCH " + deep(50000, "OR ALL ") + "ALL\r\n"}, want: "BAD"},
		{name: "search not at limit", chunks: []string{"SEARCH " + deep(100, "NOT ") + "ALL\r\n"}, want: "OK", states: []string{"selected"}},
		{name: "search not over limit", chunks: []string{"SEARCH " + deep(101, "NOT ") + "ALL\r\n"}, want: "BAD"},
		{name: "search parens at limit", chunks: []string{"SEARCH " + deep(100, "(") + "ALL" + deep(100, ")") + "\r\n"}, want: "OK", states: []string{"selected"}},
		{name: "search parens over limit", chunks: []string{"SEARCH " + deep(101, "(") + "ALL" + deep(101, ")") + "\r\n"}, want: "BAD"},
		{name: "search or over limit", chunks: []string{"SEARCH " + deep(101, "OR ALL ") + "ALL\r\n"}, want: "BAD"},
		{name: "nested lists over limit", chunks: []string{"STATUS INBOX " + deep(1500, "(") + "\r\n"}, want: "BAD"},
		{name: "expunge args", chunks: []string{"EXPUNGE x\r\n"}, want: "BAD"},
		{name: "uid expunge junk", chunks: []string{"UID EXPUNGE x\r\n"}, want: "BAD"},
		{name: "close args", chunks: []string{"CLOSE x\r\n"}, want: "BAD"},
		{name: "unselect args", chunks: []string{"UNSELECT x\r\n"}, want: "BAD"},
		{name: "uid unknown", chunks: []string{"UID FOO 1\r\n"}, want: "BAD"},
		{name: "overlong line", chunks: []string{"NOOP " + deep(200000, "x") + "\r\n"}, want: "BAD"},
		{name: "overlong command name", chunks: []string{deep(200000, "x") + " NOOP\r\n"}, want: "BAD"},
	}
	for _, st := range states {
		for _, tc := range cases {
			if tc.states != nil && !contains(tc.states, st.name) {
				continue
			}
			t.Run(st.name+"/"+tc.name, func(t *testing.T) {
				sc := dialScript(t, ts.addr, st.setup)
				tag := "X1"
				chunks := append([]string{tag + " " + tc.chunks[0]}, tc.chunks[1:]...)
				lines, closed := sc.run(tag, chunks)
				all := strings.Join(lines, "\n")
				if strings.Contains(all, "SERVERBUG") || strings.Contains(all, "UNAVAILABLE") {
					t.Errorf("server failure reply:\n%s", all)
				}
				if l := el.take(); l != "" {
					t.Errorf("error logged:\n%s", l)
				}
				if closed {
					t.Fatalf("connection closed; got:\n%s", all)
				}
				done := strings.TrimPrefix(lines[len(lines)-1], tag+" ")
				want := tc.want
				if st.name == "notauth" && tc.states == nil && want != "BAD" {
					// Most commands are not allowed yet: BAD or NO
					// are both honest there.
					want = ""
				}
				if st.name == "auth" && tc.states == nil && want == "OK" {
					want = ""
				}
				if want == "" {
					if !strings.HasPrefix(done, "BAD") && !strings.HasPrefix(done, "NO") && !strings.HasPrefix(done, "OK") {
						t.Errorf("reply %q", done)
					}
				} else if !strings.HasPrefix(done, want) {
					t.Errorf("want %s, got:\n%s", want, all)
				}
				if tc.has != "" && !strings.Contains(all, tc.has) {
					t.Errorf("no %q in:\n%s", tc.has, all)
				}
				// The connection is still in step: the next command gets
				// its own reply (an unknown command before login ends
				// the connection by design).
				lines, closed = sc.run("X2", []string{"X2 NOOP\r\n"})
				bye := len(lines) > 0 && strings.HasPrefix(lines[0], "* BYE")
				if (closed || !strings.HasPrefix(lines[len(lines)-1], "X2 OK")) && !(bye && st.name == "notauth") {
					t.Errorf("NOOP afterwards: %q (closed %v)", lines, closed)
				}
				if l := el.take(); l != "" {
					t.Errorf("error logged:\n%s", l)
				}
				t.Logf("%s", done)
			})
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestSeqNumBeyondExists: a message sequence number greater than the
// client's last EXISTS is BAD for FETCH, STORE, COPY and MOVE, as Dovecot
// answers ("BAD Error in IMAP command FETCH: Invalid messageset"), and "*"
// in a mailbox known as empty is too (RFC 9051 §9, seq-number). UID
// commands and SEARCH keys name nothing instead.
func TestSeqNumBeyondExists(t *testing.T) {
	ts := newTestServer(t)
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	rc.mustOK("CREATE Empty")
	rc.mustOK("SELECT Empty")
	for _, c := range []string{"FETCH * FLAGS", "FETCH 1:* FLAGS", "FETCH 1 FLAGS", "STORE * +FLAGS (\\Seen)", "COPY 1:* INBOX", "MOVE * INBOX"} {
		if _, d := rc.cmd("%s", c); !strings.HasPrefix(d, "BAD") {
			t.Errorf("empty mailbox, %s: %s", c, d)
		}
	}
	for _, c := range []string{"UID FETCH 1:* FLAGS", "UID STORE * +FLAGS (\\Seen)", "UID COPY 1:* INBOX", "SEARCH 1:*"} {
		rc.mustOK("%s", c)
	}

	for i := 1; i <= 3; i++ {
		ts.deliver(t, "alice@example.org", "", testMessage(i))
	}
	rc.mustOK("SELECT INBOX")
	for _, c := range []string{"FETCH 4 FLAGS", "FETCH 2:4 FLAGS", "FETCH 4:* FLAGS", "FETCH 1,5 FLAGS", "STORE 4 +FLAGS (\\Seen)", "COPY 3:4 INBOX", "MOVE 9 INBOX"} {
		if _, d := rc.cmd("%s", c); !strings.HasPrefix(d, "BAD") {
			t.Errorf("%s: %s", c, d)
		}
	}
	for _, c := range []string{"FETCH 3 FLAGS", "FETCH 3:* FLAGS", "FETCH * FLAGS", "FETCH 1:3 FLAGS", "UID FETCH 1:999 FLAGS", "UID FETCH 999 FLAGS", "UID STORE 999 +FLAGS (\\Seen)", "SEARCH 999"} {
		rc.mustOK("%s", c)
	}

	// A message delivered meanwhile has no number until the client is
	// told: not before the EXISTS, even though the mailbox has it.
	ts.deliver(t, "alice@example.org", "", testMessage(4))
	ts.deliver(t, "alice@example.org", "", testMessage(5))
	// (Store events reach the mailbox state on the delivering goroutine,
	// before Deliver returns.)
	u, d := rc.cmd("FETCH 4 FLAGS")
	if !strings.HasPrefix(d, "BAD") {
		t.Errorf("FETCH 4 before EXISTS: %s %q", d, u)
	}
	u, d = rc.cmd("FETCH 1:* UID")
	if !strings.HasPrefix(d, "OK") || hasLine(u, "* 4 FETCH") || !hasLine(u, "* 5 EXISTS") {
		t.Errorf("FETCH 1:* before EXISTS: %s %q", d, u)
	}
	// That reply carried "* 5 EXISTS": now 4 and 5 are valid.
	u = rc.mustOK("FETCH 4:5 UID")
	if !hasLine(u, "* 4 FETCH") || !hasLine(u, "* 5 FETCH") {
		t.Errorf("FETCH 4:5 after EXISTS: %q", u)
	}
}

// TestAppendStoresOnlyWholeCommands: an APPEND whose literal is cut short by
// the connection, or whose command does not end after the literal, stores
// nothing; the first is no failure of ours (no error log), the second gets
// BAD and the connection stays in step.
func TestAppendStoresOnlyWholeCommands(t *testing.T) {
	el := &errorLog{}
	ts := newTestServer(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(el, &slog.HandlerOptions{Level: slog.LevelError}))
	})
	messages := func() string {
		rc := ts.raw(t)
		rc.login("alice@example.org", "alicepw")
		u := rc.mustOK("STATUS INBOX (MESSAGES)")
		rc.mustOK("LOGOUT")
		return strings.Join(u, "\n")
	}

	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	for _, c := range []string{"APPEND INBOX {3+}\r\nabc x", "APPEND INBOX (\\Seen) {3+}\r\nabc)", "APPEND INBOX UTF8 (~{3+}\r\nabc"} {
		if _, d := rc.cmd("%s", c); !strings.HasPrefix(d, "BAD") {
			t.Errorf("%q: %s", c, d)
		}
	}
	rc.mustOK("NOOP")

	rc = ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	rc.send("A1 APPEND INBOX {100+}\r\nFrom: a@example.org\r\n\r\nonly part of it")
	rc.conn.(*net.TCPConn).CloseWrite()
	rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(rc.r)
	if err != nil {
		t.Fatalf("reading to the close: %v", err)
	}
	if strings.Contains(string(rest), "SERVERBUG") {
		t.Errorf("cut-short APPEND: %q", rest)
	}

	if got := messages(); !strings.Contains(got, "MESSAGES 0") {
		t.Errorf("stored after failed APPENDs: %s", got)
	}
	if l := el.take(); l != "" {
		t.Errorf("error logged:\n%s", l)
	}
	// A whole APPEND still works.
	rc = ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	rc.send("A2 APPEND INBOX {3+}\r\nabc\r\n")
	if _, d := rc.until("A2"); !strings.HasPrefix(d, "OK") {
		t.Errorf("whole APPEND: %s", d)
	}
	if got := messages(); !strings.Contains(got, "MESSAGES 1") {
		t.Errorf("after a whole APPEND: %s", got)
	}
}
