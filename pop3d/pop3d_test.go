package pop3d

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/mailstore"
)

func TestCapa(t *testing.T) {
	tests := []struct {
		name     string
		loopback bool
		want     []string
		absent   []string
	}{
		{"loopback secure", true, []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "SASL PLAIN LOGIN", "STLS", "IMPLEMENTATION Posthouse"}, nil},
		{"plaintext not secure", false, []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS", "IMPLEMENTATION Posthouse"}, []string{"USER", "SASL PLAIN LOGIN"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, withOptions(func(o *Options) { o.LoopbackIsSecure = tc.loopback }))
			c := ts.dial(t)
			c.cmdOK("CAPA")
			caps := c.multi()
			for _, w := range tc.want {
				if !slices.Contains(caps, w) {
					t.Errorf("CAPA %q lacks %q", caps, w)
				}
			}
			for _, a := range tc.absent {
				if slices.Contains(caps, a) {
					t.Errorf("CAPA %q has %q", caps, a)
				}
			}
			c.cmdOK("QUIT")
			c.expectClosed()
		})
	}
}

func TestCapaInTransaction(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(t)
	c.cmdOK("CAPA")
	caps := c.multi()
	for _, a := range []string{"USER", "STLS", "SASL PLAIN LOGIN"} {
		if slices.Contains(caps, a) {
			t.Errorf("CAPA after login %q has %q", caps, a)
		}
	}
	if !slices.Contains(caps, "UIDL") {
		t.Errorf("CAPA after login %q lacks UIDL", caps)
	}
}

func TestGreeting(t *testing.T) {
	ts := newTestServer(t)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl := &client{t: t, c: c, r: newReader(c)}
	if g := cl.line(); g != "+OK Posthouse POP3 server ready on pop.example.org" {
		t.Fatalf("greeting %q", g)
	}
}

func TestAuthorizationScript(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial(t)
	for _, step := range []struct{ send, want string }{
		{"STAT", "-ERR command not valid in this state"},
		{"RETR 1", "-ERR command not valid in this state"},
		{"PASS x", "-ERR send USER first"},
		{"XYZZY", "-ERR unknown command"},
		{"APOP alice 0123456789abcdef", "-ERR APOP is not supported"},
		{"USER", "-ERR syntax error"},
		{"USER " + testUser, "+OK"},
		{"PASS wrong", "-ERR [AUTH] authentication failed"},
		{"PASS " + testPass, "-ERR send USER first"}, // a failed PASS forgets USER
		{"user " + testUser, "+OK"},                  // keywords are case-insensitive
		{"pass " + testPass, "+OK maildrop has 0 messages (0 octets)"},
		{"USER x", "-ERR command not valid in this state"},
		{"STLS", "-ERR command not valid in this state"},
		{"QUIT", "+OK Posthouse POP3 server signing off (0 messages left)"},
	} {
		c.cmdErr(step.send, step.want)
	}
	c.expectClosed()
}

func TestPasswordWithSpaces(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial(t)
	c.cmdOK("USER " + testUser)
	c.cmdOK("PASS " + testPass) // "correct horse battery"
}

func TestAuthFailuresClose(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial(t)
	for i := 0; i < DefaultMaxAuthFailures; i++ {
		c.cmdOK("USER " + testUser)
		c.cmdErr("PASS nope", "-ERR [AUTH]")
	}
	c.expectClosed()
}

func TestThrottled(t *testing.T) {
	ts := newTestServer(t)
	ts.auth.throttled = true
	c := ts.dial(t)
	c.cmdOK("USER " + testUser)
	c.cmdErr("PASS "+testPass, "-ERR [SYS/TEMP] too many failed logins")
	c.cmdErr("AUTH PLAIN "+plainIR(testUser, testPass), "-ERR [SYS/TEMP]")
}

func TestNotSecure(t *testing.T) {
	ts := newTestServer(t, withOptions(func(o *Options) { o.LoopbackIsSecure = false }))
	c := ts.dial(t)
	c.cmdErr("USER "+testUser, "-ERR plaintext authentication is not allowed before TLS")
	c.cmdErr("PASS "+testPass, "-ERR plaintext authentication is not allowed before TLS")
	c.cmdErr("AUTH PLAIN "+plainIR(testUser, testPass), "-ERR plaintext authentication is not allowed before TLS")
	if ts.auth.attempts != 0 {
		t.Fatalf("credentials were checked %d times before TLS", ts.auth.attempts)
	}
}

func TestNoTLSConfigured(t *testing.T) {
	ts := newTestServer(t, withOptions(func(o *Options) { o.TLS = nil }))
	c := ts.dial(t)
	c.cmdOK("CAPA")
	if caps := c.multi(); slices.Contains(caps, "STLS") {
		t.Errorf("CAPA without TLS config offers STLS: %q", caps)
	}
	c.cmdErr("STLS", "-ERR STLS is not available")
}

func TestSTLS(t *testing.T) {
	ts := newTestServer(t, withOptions(func(o *Options) { o.LoopbackIsSecure = false }))
	ts.deliver(t, testUser, msg("one", "hello\r\n"))
	c := ts.dial(t)
	c.cmdOK("STLS")
	tc := tls.Client(c.c, ts.tls)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.c, c.r = tc, newReader(tc)
	c.cmdOK("CAPA")
	caps := c.multi()
	if slices.Contains(caps, "STLS") || !slices.Contains(caps, "USER") || !slices.Contains(caps, "SASL PLAIN LOGIN") {
		t.Errorf("CAPA after STLS: %q", caps)
	}
	c.cmdErr("STLS", "-ERR command not permitted when TLS active")
	c.cmdOK("USER " + testUser)
	c.cmdOK("PASS " + testPass)
	c.cmdErr("RETR 1", "+OK")
	if got := c.multiRaw(); !bytes.Equal(got, msg("one", "hello\r\n")) {
		t.Fatalf("RETR over TLS: %q", got)
	}
	c.cmdOK("QUIT")
}

// TestSTLSInjection: commands pipelined behind STLS in the clear must not
// run inside the TLS session (RFC 2595 §4).
func TestSTLSInjection(t *testing.T) {
	ts := newTestServer(t, withOptions(func(o *Options) { o.LoopbackIsSecure = false }))
	c := ts.dial(t)
	io.WriteString(c.c, "STLS\r\nUSER "+testUser+"\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("STLS: %q", l)
	}
	tc := tls.Client(c.c, ts.tls)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.c, c.r = tc, newReader(tc)
	// The injected USER was dropped: PASS has no USER to go with.
	c.cmdErr("PASS "+testPass, "-ERR send USER first")
}

func TestImplicitTLS(t *testing.T) {
	ts := newTestServer(t, withOptions(func(o *Options) {
		o.ImplicitTLS = true
		o.LoopbackIsSecure = false
	}))
	ts.deliver(t, testUser, msg("one", "hello\r\n"))
	c := ts.dialTLS(t)
	c.cmdOK("CAPA")
	caps := c.multi()
	if slices.Contains(caps, "STLS") || !slices.Contains(caps, "USER") {
		t.Errorf("CAPA on implicit TLS: %q", caps)
	}
	c.cmdOK("USER " + testUser)
	c.cmdOK("PASS " + testPass)
	c.cmdOK("STAT")
	c.cmdOK("QUIT")

	// A client that speaks plaintext to the TLS port gets nothing useful
	// and is closed.
	raw, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	io.WriteString(raw, "CAPA\r\n")
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(raw)
	if bytes.Contains(b, []byte("+OK")) {
		t.Fatalf("plaintext on TLS port got %q", b)
	}
}

func plainIR(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuthSASL(t *testing.T) {
	tests := []struct {
		name   string
		script []struct{ send, want string }
	}{
		{"PLAIN with initial response", []struct{ send, want string }{
			{"AUTH PLAIN " + plainIR(testUser, testPass), "+OK maildrop has"},
		}},
		{"PLAIN lower-case mechanism", []struct{ send, want string }{
			{"AUTH plain " + plainIR(testUser, testPass), "+OK"},
		}},
		{"PLAIN without initial response", []struct{ send, want string }{
			{"AUTH PLAIN", "+ "},
			{plainIR(testUser, testPass), "+OK maildrop has"},
		}},
		{"PLAIN bad password", []struct{ send, want string }{
			{"AUTH PLAIN " + plainIR(testUser, "nope"), "-ERR [AUTH] authentication failed"},
			{"STAT", "-ERR command not valid in this state"},
		}},
		{"PLAIN empty initial response", []struct{ send, want string }{
			{"AUTH PLAIN =", "-ERR [AUTH]"},
		}},
		{"PLAIN cancelled", []struct{ send, want string }{
			{"AUTH PLAIN", "+ "},
			{"*", "-ERR authentication cancelled"},
			{"AUTH PLAIN " + plainIR(testUser, testPass), "+OK"},
		}},
		{"PLAIN bad base64", []struct{ send, want string }{
			{"AUTH PLAIN", "+ "},
			{"!!!not base64", "-ERR invalid base64"},
			{"NOOP", "-ERR command not valid in this state"},
		}},
		{"PLAIN bad base64 initial response", []struct{ send, want string }{
			{"AUTH PLAIN ###", "-ERR invalid base64"},
		}},
		{"LOGIN without initial response", []struct{ send, want string }{
			{"AUTH LOGIN", "+ " + b64("Username:")},
			{b64(testUser), "+ " + b64("Password:")},
			{b64(testPass), "+OK"},
		}},
		{"LOGIN with initial response", []struct{ send, want string }{
			{"AUTH LOGIN " + b64(testUser), "+ " + b64("Password:")},
			{b64(testPass), "+OK"},
		}},
		{"unknown mechanism", []struct{ send, want string }{
			{"AUTH CRAM-MD5", "-ERR unsupported authentication mechanism"},
		}},
		{"bare AUTH lists mechanisms", []struct{ send, want string }{
			{"AUTH", "+OK"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t)
			c := ts.dial(t)
			for _, st := range tc.script {
				c.cmdErr(st.send, st.want)
			}
			if tc.name == "bare AUTH lists mechanisms" {
				if got := c.multi(); !slices.Equal(got, []string{"PLAIN", "LOGIN"}) {
					t.Fatalf("AUTH list: %q", got)
				}
			}
		})
	}
}

// TestTransactionScript walks every TRANSACTION command.
func TestTransactionScript(t *testing.T) {
	ts := newTestServer(t, withOptions(func(o *Options) { o.MaxErrors = 100 }))
	m1 := msg("first", "line one\r\nline two\r\nline three\r\n")
	m2 := msg("second", "body\r\n")
	m3 := msg("third", "x\r\n")
	for _, m := range [][]byte{m1, m2, m3} {
		ts.deliver(t, testUser, m)
	}
	total := len(m1) + len(m2) + len(m3)
	c := ts.dial(t)
	c.cmdOK("USER " + testUser)
	if got, want := c.cmd("PASS "+testPass), fmt.Sprintf("+OK maildrop has 3 messages (%d octets)", total); got != want {
		t.Fatalf("PASS: %q, want %q", got, want)
	}
	if got, want := c.cmd("STAT"), fmt.Sprintf("+OK 3 %d", total); got != want {
		t.Fatalf("STAT: %q, want %q", got, want)
	}
	c.cmdOK("LIST")
	if got, want := c.multi(), []string{"1 " + strconv.Itoa(len(m1)), "2 " + strconv.Itoa(len(m2)), "3 " + strconv.Itoa(len(m3))}; !slices.Equal(got, want) {
		t.Fatalf("LIST: %q, want %q", got, want)
	}
	if got, want := c.cmd("LIST 2"), "+OK 2 "+strconv.Itoa(len(m2)); got != want {
		t.Fatalf("LIST 2: %q", got)
	}
	for _, bad := range []string{"LIST 0", "LIST 4", "LIST abc", "LIST -1", "LIST 99999999999", "RETR 0", "DELE 4", "TOP 9 1", "UIDL 0"} {
		c.cmdErr(bad, "-ERR no such message")
	}
	for _, bad := range []string{"LIST 1 2", "RETR", "RETR 1 2", "DELE", "TOP 1", "TOP 1 x", "TOP 1 -1", "STAT 1", "NOOP x", "RSET 1"} {
		c.cmdErr(bad, "-ERR syntax error")
	}
	c.cmdOK("UIDL")
	uidls := c.multi()
	if len(uidls) != 3 {
		t.Fatalf("UIDL: %q", uidls)
	}
	for i, l := range uidls {
		n, id, _ := strings.Cut(l, " ")
		if n != strconv.Itoa(i+1) || !validUIDL(id) {
			t.Fatalf("UIDL line %q", l)
		}
		if got := c.cmd("UIDL " + n); got != "+OK "+l {
			t.Fatalf("UIDL %s: %q, want +OK %s", n, got, l)
		}
	}
	if got, want := c.cmd("RETR 1"), fmt.Sprintf("+OK %d octets", len(m1)); got != want {
		t.Fatalf("RETR 1: %q", got)
	}
	if got := c.multiRaw(); !bytes.Equal(got, m1) {
		t.Fatalf("RETR 1 body %q", got)
	}
	c.cmdOK("TOP 1 1")
	if got, want := string(c.multiRaw()), "From: bob@example.org\r\nTo: alice@example.org\r\nSubject: first\r\n\r\nline one\r\n"; got != want {
		t.Fatalf("TOP 1 1: %q, want %q", got, want)
	}
	c.cmdOK("TOP 1 0")
	if got, want := string(c.multiRaw()), "From: bob@example.org\r\nTo: alice@example.org\r\nSubject: first\r\n\r\n"; got != want {
		t.Fatalf("TOP 1 0: %q", got)
	}
	c.cmdOK("TOP 1 100")
	if got := c.multiRaw(); !bytes.Equal(got, m1) {
		t.Fatalf("TOP 1 100: %q", got)
	}
	c.cmdOK("NOOP")
	if got := c.cmd("DELE 2"); got != "+OK message 2 deleted" {
		t.Fatalf("DELE 2: %q", got)
	}
	c.cmdErr("DELE 2", "-ERR message already deleted")
	c.cmdErr("RETR 2", "-ERR message already deleted")
	c.cmdErr("TOP 2 0", "-ERR message already deleted")
	c.cmdErr("LIST 2", "-ERR message already deleted")
	c.cmdErr("UIDL 2", "-ERR message already deleted")
	if got, want := c.cmd("STAT"), fmt.Sprintf("+OK 2 %d", len(m1)+len(m3)); got != want {
		t.Fatalf("STAT after DELE: %q, want %q", got, want)
	}
	c.cmdOK("LIST")
	if got := c.multi(); !slices.Equal(got, []string{"1 " + strconv.Itoa(len(m1)), "3 " + strconv.Itoa(len(m3))}) {
		t.Fatalf("LIST after DELE: %q", got)
	}
	c.cmdOK("UIDL")
	if got := c.multi(); !slices.Equal(got, []string{uidls[0], uidls[2]}) {
		t.Fatalf("UIDL after DELE: %q", got)
	}
	if got, want := c.cmd("RSET"), fmt.Sprintf("+OK maildrop has 3 messages (%d octets)", total); got != want {
		t.Fatalf("RSET: %q", got)
	}
	c.cmdOK("LIST 2")
	c.cmdOK("DELE 3")
	c.cmdOK("DELE 1")
	if got := c.cmd("QUIT"); got != "+OK Posthouse POP3 server signing off (1 messages left)" {
		t.Fatalf("QUIT: %q", got)
	}
	c.expectClosed()

	snap := ts.inbox(t, testUser)
	if len(snap.Messages) != 1 {
		t.Fatalf("after QUIT, INBOX has %d messages, want 1", len(snap.Messages))
	}
	// The survivor keeps its UIDL in the next session.
	c = ts.login(t)
	c.cmdOK("UIDL")
	if got := c.multi(); !slices.Equal(got, []string{"1 " + strings.SplitN(uidls[1], " ", 2)[1]}) {
		t.Fatalf("UIDL in next session: %q (before: %q)", got, uidls)
	}
}

// validUIDL checks RFC 1939 §7: 1 to 70 octets in 0x21..0x7E.
func validUIDL(s string) bool {
	if len(s) < 1 || len(s) > 70 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func TestDeleteOnlyAtQuit(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, testUser, msg("a", "a\r\n"))
	ts.deliver(t, testUser, msg("b", "b\r\n"))
	c := ts.login(t)
	c.cmdOK("DELE 1")
	c.cmdOK("DELE 2")
	c.cmdOK("NOOP")
	if n := len(ts.inbox(t, testUser).Messages); n != 2 {
		t.Fatalf("before QUIT: %d messages, want 2", n)
	}
	c.cmdOK("QUIT")
	c.expectClosed()
	if n := len(ts.inbox(t, testUser).Messages); n != 0 {
		t.Fatalf("after QUIT: %d messages, want 0", n)
	}
}

// TestQuitLeavesOthersDeleted: UPDATE expunges only what DELE marked, not
// messages an IMAP client flagged \Deleted.
func TestQuitLeavesOthersDeleted(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, testUser, msg("a", "a\r\n"))
	ts.deliver(t, testUser, msg("b", "b\r\n"))
	ctx := context.Background()
	acct, err := ts.store.Open(ctx, testUser)
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	mb, _ := acct.Mailbox(ctx, mailstore.Inbox)
	snap := ts.inbox(t, testUser)
	var set imap.UIDSet
	set.AddNum(snap.Messages[1].UID)
	if _, err := acct.StoreFlags(ctx, mb.ID, set, mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	c := ts.login(t)
	c.cmdOK("DELE 1")
	c.cmdOK("QUIT")
	c.expectClosed()
	after := ts.inbox(t, testUser)
	if len(after.Messages) != 1 || after.Messages[0].UID != snap.Messages[1].UID {
		t.Fatalf("after QUIT: %+v, want only UID %d", after.Messages, snap.Messages[1].UID)
	}
}

func TestDroppedConnectionAppliesNothing(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, testUser, msg("a", "a\r\n"))
	c := ts.login(t)
	c.cmdOK("DELE 1")
	c.c.Close()
	waitForSessions(t, ts, 0)
	if n := len(ts.inbox(t, testUser).Messages); n != 1 {
		t.Fatalf("after drop: %d messages, want 1", n)
	}
	// The lock was released.
	c = ts.login(t)
	c.cmdOK("STAT")
}

func waitForSessions(t testing.TB, ts *testServer, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d sessions", n), func() bool {
		return ts.srv.life.Len() == n
	})
}

// TestVanishMidRetr: a client that disappears during a large RETR leaves
// no deletion applied, no lock held and no goroutine behind.
func TestVanishMidRetr(t *testing.T) {
	ts := newTestServer(t)
	big := bigMessage(4 << 20)
	ts.deliver(t, testUser, msg("small", "x\r\n"))
	ts.deliver(t, testUser, big)
	c := ts.login(t)
	c.cmdOK("DELE 1")
	c.cmdOK("RETR 2")
	buf := make([]byte, 64<<10)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		t.Fatal(err)
	}
	if tc, ok := c.c.(*net.TCPConn); ok {
		tc.SetLinger(0) // reset, as a vanished client's stack would
	}
	c.c.Close()
	waitForSessions(t, ts, 0)
	if n := len(ts.inbox(t, testUser).Messages); n != 2 {
		t.Fatalf("after vanish: %d messages, want 2", n)
	}
	c = ts.login(t)
	c.cmdOK("STAT")
}

func TestInUse(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, testUser, msg("a", "a\r\n"))
	c1 := ts.login(t)
	c2 := ts.dial(t)
	c2.cmdOK("USER " + testUser)
	c2.cmdErr("PASS "+testPass, "-ERR [IN-USE] maildrop is locked by another POP3 session")
	c2.cmdErr("STAT", "-ERR command not valid in this state")
	c2.cmdErr("AUTH PLAIN "+plainIR(testUser, testPass), "-ERR [IN-USE]")
	// Another account is not affected.
	c3 := ts.dial(t)
	c3.cmdOK("USER bob@example.org")
	c3.cmdOK("PASS bobpass")
	// The lock is free as soon as QUIT's reply arrives, before the close.
	c1.cmdOK("QUIT")
	c2.cmdOK("USER " + testUser)
	c2.cmdOK("PASS " + testPass)
	c2.cmdOK("STAT")
}

// TestDotStuffing checks byte-stuffing and that RETR gives the stored
// octets exactly.
func TestDotStuffing(t *testing.T) {
	ts := newTestServer(t)
	body := ".leading dot\r\n..two dots\r\n.\r\n\r\n. \r\nmid.dle\r\n.\r\n..\r\n.end"
	m := msg("dots", body)
	ts.deliver(t, testUser, m)
	c := ts.login(t)
	c.cmdOK("RETR 1")
	// Read the raw wire form first.
	var wire bytes.Buffer
	for {
		l := c.line()
		wire.WriteString(l + "\r\n")
		if l == "." {
			break
		}
	}
	want := strings.ReplaceAll("\r\n"+string(m), "\r\n.", "\r\n..")[2:] + "\r\n.\r\n"
	if wire.String() != want {
		t.Fatalf("wire form\n%q\nwant\n%q", wire.String(), want)
	}
	c.cmdOK("RETR 1")
	got := c.multiRaw()
	// The message did not end in CRLF, so the server added one before the
	// terminator.
	if !bytes.Equal(got, append(slices.Clone(m), "\r\n"...)) {
		t.Fatalf("RETR unstuffed %q", got)
	}
	c.cmdOK("TOP 1 2")
	if got, want := string(c.multiRaw()), "From: bob@example.org\r\nTo: alice@example.org\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\n"; got != want {
		t.Fatalf("TOP with dots: %q, want %q", got, want)
	}
}

func bigMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: bob@example.org\r\nTo: alice@example.org\r\nSubject: big\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, ".line %d starts with a dot\r\n", i)
		case 1:
			b.WriteString(".\r\n")
		default:
			fmt.Fprintf(&b, "line %d %s\r\n", i, strings.Repeat("abcdefghij", i%8))
		}
	}
	return b.Bytes()
}

func TestLargeMessageByteExact(t *testing.T) {
	ts := newTestServer(t)
	big := bigMessage(10 << 20)
	ts.deliver(t, testUser, big)
	c := ts.login(t)
	if got, want := c.cmd("LIST 1"), "+OK 1 "+strconv.Itoa(len(big)); got != want {
		t.Fatalf("LIST 1: %q, want %q", got, want)
	}
	c.cmdOK("RETR 1")
	if got := c.multiRaw(); !bytes.Equal(got, big) {
		t.Fatalf("10 MB RETR differs: got %d octets, want %d", len(got), len(big))
	}
	c.cmdOK("QUIT")
}

func TestRetrMarksSeen(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, testUser, msg("a", "a\r\n"))
	ts.deliver(t, testUser, msg("b", "b\r\n"))
	c := ts.login(t)
	c.cmdOK("RETR 1")
	c.multiRaw()
	c.cmdOK("TOP 2 0")
	c.multiRaw()
	c.cmdOK("QUIT")
	c.expectClosed()
	snap := ts.inbox(t, testUser)
	if !slices.Contains(snap.Messages[0].Flags, imap.FlagSeen) {
		t.Errorf("RETR'd message flags %v, want \\Seen", snap.Messages[0].Flags)
	}
	if slices.Contains(snap.Messages[1].Flags, imap.FlagSeen) {
		t.Errorf("TOP'd message flags %v, want no \\Seen", snap.Messages[1].Flags)
	}
}

// TestRetrSeenWithoutQuit: messages fully sent are \Seen even when the
// client leaves without QUIT; deletions are not applied.
func TestRetrSeenWithoutQuit(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, testUser, msg("a", "a\r\n"))
	c := ts.login(t)
	c.cmdOK("RETR 1")
	c.multiRaw()
	c.cmdOK("DELE 1")
	c.c.Close()
	waitForSessions(t, ts, 0)
	snap := ts.inbox(t, testUser)
	if len(snap.Messages) != 1 || !slices.Contains(snap.Messages[0].Flags, imap.FlagSeen) {
		t.Fatalf("after drop: %+v, want one \\Seen message", snap.Messages)
	}
}

// TestExpungedDuringSession: a message expunged over IMAP while POP3 holds
// its snapshot gets a clean -ERR; the session goes on.
func TestExpungedDuringSession(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, testUser, msg("a", "a\r\n"))
	ts.deliver(t, testUser, msg("b", "b\r\n"))
	c := ts.login(t)
	expungeFirst(t, ts.store, testUser)
	c.cmdErr("RETR 1", "-ERR message was removed from the server")
	c.cmdErr("TOP 1 0", "-ERR message was removed from the server")
	c.cmdOK("RETR 2")
	c.multiRaw()
	c.cmdOK("DELE 1")
	c.cmdOK("QUIT")
	c.expectClosed()
	if n := len(ts.inbox(t, testUser).Messages); n != 1 {
		t.Fatalf("INBOX has %d messages, want 1", n)
	}
}

// expungeFirst removes INBOX's first message as an IMAP client would.
func expungeFirst(t testing.TB, store Store, user string) {
	t.Helper()
	ctx := context.Background()
	acct, err := store.Open(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	mb, err := acct.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := acct.Snapshot(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	var set imap.UIDSet
	set.AddNum(snap.Messages[0].UID)
	if _, err := acct.StoreFlags(ctx, mb.ID, set, mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if gone, err := acct.Expunge(ctx, mb.ID, &set); err != nil || len(gone) != 1 {
		t.Fatalf("Expunge: %v %v", gone, err)
	}
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	fs := newFakeStore()
	ts := newTestServerWithStore(t, fs)
	ts.deliver(t, testUser, msg("a", "a\r\n"))
	c := ts.login(t)
	fs.mu.Lock()
	fs.failOpenMessage = errors.New("open /secret/path/cur/123: input/output error")
	fs.failExpunge = errors.New("database disk image is malformed")
	fs.mu.Unlock()
	l := c.cmdErr("RETR 1", "-ERR [SYS/TEMP] internal server error")
	if strings.Contains(l, "secret") {
		t.Fatalf("internal error leaked: %q", l)
	}
	c.cmdOK("DELE 1")
	if l := c.cmd("QUIT"); l != "-ERR [SYS/TEMP] some deleted messages not removed" {
		t.Fatalf("QUIT with failing expunge: %q", l)
	}
	c.expectClosed()
}

// newTestServerWithStore is newTestServer on a fakeStore.
func newTestServerWithStore(t testing.TB, store *fakeStore) *testServer {
	t.Helper()
	ts := newTestServer(t, withOptions(func(o *Options) { o.Store = store }))
	ts.store, ts.disk = store, nil
	return ts
}

func TestBadInput(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial(t)
	// A line of exactly 255 octets with CRLF is accepted.
	c.cmdErr("USER "+strings.Repeat("a", maxCommandLine-7), "+OK")
	// One more octet is too long; the session stays in step.
	c.cmdErr("USER "+strings.Repeat("a", maxCommandLine-6), "-ERR line too long")
	c.cmdErr("NOOP\x00", "-ERR syntax error")
	c.cmdErr("\x00\x01\x02", "-ERR syntax error")
	c.cmdErr("", "-ERR syntax error")
	c.cmdErr("\xff\xfe garbage", "-ERR unknown command")
	c.cmdErr("CAPABILITY", "-ERR unknown command")
	c.cmdOK("CAPA")
	c.multi()
	// Bare LF line ends are accepted.
	io.WriteString(c.c, "QUIT\n")
	c.expectOK()
	c.expectClosed()
}

func TestTooManyErrors(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial(t)
	for i := 1; i < DefaultMaxErrors; i++ {
		c.cmdErr("BOGUS", "-ERR unknown command")
	}
	c.cmdErr("BOGUS", "-ERR too many bad commands, closing connection")
	c.expectClosed()
}

func TestEndlessLine(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial(t)
	go func() {
		c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.c.Write(bytes.Repeat([]byte("A"), 2*maxDiscard))
	}()
	if l := c.line(); l != "-ERR line too long" {
		t.Fatalf("endless line: %q", l)
	}
	c.expectClosed()
}

// TestPipelining: many commands in one packet each get their reply, in
// order (RFC 2449 §6.6).
func TestPipelining(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, testUser, msg("a", "a\r\n"))
	c := ts.dial(t)
	const n = 2000
	var b strings.Builder
	b.WriteString("USER " + testUser + "\r\nPASS " + testPass + "\r\n")
	for i := 0; i < n; i++ {
		switch i % 4 {
		case 0:
			b.WriteString("NOOP\r\n")
		case 1:
			b.WriteString("STAT\r\n")
		case 2:
			b.WriteString("LIST\r\n")
		case 3:
			b.WriteString("RETR 1\r\n")
		}
	}
	b.WriteString("QUIT\r\n")
	go func() {
		c.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c.c, b.String())
	}()
	c.expectOK()
	c.expectOK()
	for i := 0; i < n; i++ {
		c.expectOK()
		if i%4 >= 2 {
			c.multiRaw()
		}
	}
	c.expectOK()
	c.expectClosed()
}

func TestLoginTimeout(t *testing.T) {
	ts := newTestServer(t, withOptions(func(o *Options) { o.LoginTimeout = 100 * time.Millisecond }))
	c := ts.dial(t)
	if l := c.line(); l != "-ERR autologout; idle for too long" {
		t.Fatalf("got %q", l)
	}
	c.expectClosed()
}

func TestLoginTotal(t *testing.T) {
	ts := newTestServer(t, withOptions(func(o *Options) { o.LoginTotal = 300 * time.Millisecond }))
	c := ts.dial(t)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.send("CAPA")
		if l := c.line(); strings.HasPrefix(l, "-ERR autologout") {
			c.expectClosed()
			return
		}
		c.multi()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("session in AUTHORIZATION outlived LoginTotal")
}

func TestIdleTimeoutAppliesNothing(t *testing.T) {
	ts := newTestServer(t, withOptions(func(o *Options) { o.IdleTimeout = 200 * time.Millisecond }))
	ts.deliver(t, testUser, msg("a", "a\r\n"))
	c := ts.dial(t)
	// One write, so a slow test machine cannot idle out before DELE.
	io.WriteString(c.c, "USER "+testUser+"\r\nPASS "+testPass+"\r\nDELE 1\r\n")
	c.expectOK()
	c.expectOK()
	c.expectOK()
	if l := c.line(); l != "-ERR autologout; idle for too long" {
		t.Fatalf("got %q", l)
	}
	c.expectClosed()
	waitForSessions(t, ts, 0)
	if n := len(ts.inbox(t, testUser).Messages); n != 1 {
		t.Fatalf("after autologout: %d messages, want 1", n)
	}
}

func TestShutdown(t *testing.T) {
	disk := newTestStore(t)
	store := MailStore(disk)
	srv, err := New(Options{Store: store, Auth: newFakeAuth(map[string]string{testUser: testPass}), LoopbackIsSecure: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, store: store, disk: disk}
	ts.deliver(t, testUser, msg("a", "a\r\n"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()

	idle := ts.dial(t)
	busy := ts.login(t)
	busy.cmdOK("DELE 1")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; err != ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
	for _, c := range []*client{idle, busy} {
		if l := c.line(); l != "-ERR [SYS/TEMP] server shutting down, try again later" {
			t.Fatalf("goodbye %q", l)
		}
		c.expectClosed()
	}
	if n := len(ts.inbox(t, testUser).Messages); n != 1 {
		t.Fatalf("after shutdown: %d messages, want 1", n)
	}
	if _, err := net.Dial("tcp", ts.addr); err == nil {
		t.Fatal("listener still accepting after Shutdown")
	}
	if err := srv.Serve(context.Background(), ln); err != ErrServerClosed {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

// TestShutdownForced: a client that stops reading mid-RETR is cut when
// the grace period ends; Shutdown still waits for its goroutine.
func TestShutdownForced(t *testing.T) {
	disk := newTestStore(t)
	store := MailStore(disk)
	srv, err := New(Options{Store: store, Auth: newFakeAuth(map[string]string{testUser: testPass}), LoopbackIsSecure: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, store: store, disk: disk}
	ts.deliver(t, testUser, msg("small", "x\r\n"))
	ts.deliver(t, testUser, bigMessage(8<<20))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	c := ts.login(t)
	// A small receive buffer, so the kernel cannot swallow the message.
	c.c.(*net.TCPConn).SetReadBuffer(4 << 10)
	c.cmdOK("DELE 1")
	// Read RETR's status line, then nothing more: the server blocks
	// writing the body.
	c.cmdOK("RETR 2")

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown: %v, want DeadlineExceeded", err)
	}
	<-done
	if n := srv.life.Len(); n != 0 {
		t.Fatalf("%d sessions left after Shutdown", n)
	}
	if n := len(ts.inbox(t, testUser).Messages); n != 2 {
		t.Fatalf("after forced shutdown: %d messages, want 2", n)
	}
}

func TestConnectionLimit(t *testing.T) {
	for _, implicit := range []bool{false, true} {
		t.Run(fmt.Sprintf("implicitTLS=%v", implicit), func(t *testing.T) {
			ts := newTestServer(t, withOptions(func(o *Options) {
				o.Conns = limit.NewConns(1, 10)
				o.ImplicitTLS = implicit
			}))
			dial := ts.dial
			if implicit {
				dial = ts.dialTLS
			}
			c := dial(t)
			var c2 net.Conn
			var err error
			if implicit {
				c2, err = tls.Dial("tcp", ts.addr, ts.tls)
			} else {
				c2, err = net.Dial("tcp", ts.addr)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			c2.SetReadDeadline(time.Now().Add(10 * time.Second))
			b, _ := io.ReadAll(c2)
			if string(b) != "-ERR [SYS/TEMP] too many connections\r\n" {
				t.Fatalf("refused connection got %q", b)
			}
			c.cmdOK("QUIT")
			c.expectClosed()
			// The slot is free again.
			waitForSessions(t, ts, 0)
			c = dial(t)
			c.cmdOK("CAPA")
		})
	}
}

func TestNewRequiresStoreAndAuth(t *testing.T) {
	if _, err := New(Options{Auth: newFakeAuth(nil)}); err == nil {
		t.Error("New without Store succeeded")
	}
	if _, err := New(Options{Store: newFakeStore()}); err == nil {
		t.Error("New without Auth succeeded")
	}
	if _, err := New(Options{Store: newFakeStore(), Auth: newFakeAuth(nil), ImplicitTLS: true}); err == nil {
		t.Error("New with ImplicitTLS and no TLS config succeeded")
	}
}

// TestStalledRetrBlocksNobody: a client that stops reading in the middle of
// a RETR holds no store lock; other accounts, IMAP-side changes to its own
// account and deliveries go on.
func TestStalledRetrBlocksNobody(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, testUser, bigMessage(8<<20))
	ts.deliver(t, "bob@example.org", msg("for bob", "hi\r\n"))
	stalled := ts.login(t)
	stalled.c.(*net.TCPConn).SetReadBuffer(4 << 10)
	stalled.cmdOK("RETR 1") // and read no more of it

	bob := ts.dial(t)
	bob.cmdOK("USER bob@example.org")
	bob.cmdOK("PASS bobpass")
	bob.cmdOK("RETR 1")
	bob.multiRaw()
	bob.cmdOK("DELE 1")
	bob.cmdOK("QUIT")
	if n := len(ts.inbox(t, "bob@example.org").Messages); n != 0 {
		t.Fatalf("bob's INBOX has %d messages after QUIT", n)
	}
	// The stalled account still takes deliveries and flag changes.
	ts.deliver(t, testUser, msg("new", "x\r\n"))
	if n := len(ts.inbox(t, testUser).Messages); n != 2 {
		t.Fatalf("alice's INBOX has %d messages, want 2", n)
	}
	stalled.c.Close()
	waitForSessions(t, ts, 0)
}
