package smtpd

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthouse/posthouse/auth/limit"
)

// testClock is a movable clock for Options.Now and limit.Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)}
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// dialRawFrom connects from the loopback address src and reads the first
// line, which it returns (the greeting, or a refusal).
func dialRawFrom(t testing.TB, src, addr string) (*rawConn, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
	line, _ := c.reply()
	return c, line
}

// deliver sends one message from x@remote.test to bob over c.
func (c *rawConn) deliver(subject string) { c.t.Helper(); c.deliverFrom("x@remote.test", subject) }

func (c *rawConn) deliverFrom(from, subject string) {
	c.t.Helper()
	c.cmd("MAIL FROM:<"+from+">", "250 ")
	c.cmd("RCPT TO:<bob@example.org>", "250 ")
	c.cmd("DATA", "354 ")
	c.write("Subject: " + subject + "\r\n\r\nx\r\n.\r\n")
	c.expect("250 2.0.0 ")
}

func TestJunkCommandLimit(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxJunkCommands = 5 })
	t.Run("idle commands", func(t *testing.T) {
		c := dialRaw(t, ts.addr)
		c.ehlo() // 1
		c.cmd("NOOP", "250 ")
		c.cmd("RSET", "250 ")
		c.cmd("VRFY bob", "252 ")
		c.cmd("HELP", "502 5.5.1 ") // 5
		c.cmd("NOOP", "421 4.7.0 ")
		c.expectClosed()
	})
	t.Run("transactions do not count, a message starts over", func(t *testing.T) {
		c := dialRaw(t, ts.addr)
		c.ehlo()
		for range 3 {
			c.cmd("NOOP", "250 ")
		}
		// MAIL, RCPT and DATA advance a transaction; 20 RCPTs would be
		// four times the limit.
		c.cmd("MAIL FROM:<x@remote.test>", "250 ")
		for range 20 {
			c.cmd("RCPT TO:<bob@example.org>", "250 ")
		}
		c.cmd("DATA", "354 ")
		c.write("Subject: s\r\n\r\nx\r\n.\r\n")
		c.expect("250 2.0.0 ")
		for range 5 {
			c.cmd("RSET", "250 ")
		}
		c.cmd("RSET", "421 4.7.0 ")
		c.expectClosed()
	})
	t.Run("MAIL and RSET forever", func(t *testing.T) {
		c := dialRaw(t, ts.addr)
		c.ehlo()
		for range 4 {
			c.cmd("MAIL FROM:<x@remote.test>", "250 ")
			c.cmd("RSET", "250 ")
		}
		c.cmd("MAIL FROM:<x@remote.test>", "250 ")
		c.cmd("RSET", "421 4.7.0 ")
		c.expectClosed()
	})
	t.Run("pipelined after the limit: nothing runs", func(t *testing.T) {
		c := dialRaw(t, ts.addr)
		c.ehlo()
		c.write("NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: late\r\n\r\nx\r\n.\r\n")
		for range 4 {
			c.expect("250 ")
		}
		c.expect("421 4.7.0 ")
		c.expectClosed()
	})
	if n := ts.total(); n != 1 {
		t.Errorf("%d messages stored, want 1", n)
	}
}

func TestMaxSessionDuration(t *testing.T) {
	clk := newTestClock()
	ts := newTestServer(t, func(o *Options) { o.MaxSessionDuration = 30 * time.Minute; o.Now = clk.now })
	idle := dialRaw(t, ts.addr)
	idle.ehlo()
	busy := dialRaw(t, ts.addr)
	busy.ehlo()
	busy.deliver("first")
	busy.cmd("MAIL FROM:<x@remote.test>", "250 ")
	busy.cmd("RCPT TO:<bob@example.org>", "250 ")
	busy.cmd("DATA", "354 ")
	busy.write("Subject: slow\r\n\r\n")

	clk.advance(31 * time.Minute)
	// The limit is checked between commands: the upload under way is
	// received and accepted; the next command gets 421.
	busy.write("x\r\n.\r\n")
	busy.expect("250 2.0.0 ")
	busy.cmd("NOOP", "421 4.4.2 ")
	busy.expectClosed()
	idle.cmd("NOOP", "421 4.4.2 ")
	idle.expectClosed()
	// A new connection has its own time.
	c := dialRaw(t, ts.addr)
	c.ehlo()
	c.cmd("NOOP", "250 ")
	if n := len(ts.messages("bob@example.org")); n != 2 {
		t.Errorf("bob has %d messages, want 2", n)
	}
}

// TestFairShare is the attack: idle sessions from a few addresses fill every
// slot. A sender from another address must still get its greeting and
// deliver; the slot comes from an idle session of the biggest holder, and a
// session in the middle of DATA is never the one closed.
func TestFairShare(t *testing.T) {
	clk := newTestClock()
	conns := limit.New(limit.Options{PerIP: 5, Total: 20, Now: clk.now})
	ts := newTestServer(t, func(o *Options) { o.Conns = conns })

	// The oldest session of 127.0.0.2 is uploading a message.
	uploading, greeting := dialRawFrom(t, "127.0.0.2", ts.addr)
	if !strings.HasPrefix(greeting, "220 ") {
		t.Fatalf("greeting %q", greeting)
	}
	uploading.ehlo()
	uploading.cmd("MAIL FROM:<x@remote.test>", "250 ")
	uploading.cmd("RCPT TO:<bob@example.org>", "250 ")
	uploading.cmd("DATA", "354 ")
	uploading.write("Subject: in flight\r\n\r\n")
	waitFor(t, "the upload to start", func() bool { return ts.srv.inflightCount() == 1 })
	clk.advance(time.Minute)

	attackers := map[string][]*rawConn{}
	for i := 2; i <= 5; i++ {
		src := fmt.Sprintf("127.0.0.%d", i)
		for len(attackers[src]) < 5 {
			if src == "127.0.0.2" && len(attackers[src]) == 0 {
				attackers[src] = append(attackers[src], uploading)
				continue
			}
			c, greeting := dialRawFrom(t, src, ts.addr)
			if !strings.HasPrefix(greeting, "220 ") {
				t.Fatalf("attacker %s #%d: %q", src, len(attackers[src]), greeting)
			}
			if len(attackers[src])%2 == 0 {
				c.ehlo() // some said EHLO, some nothing at all
			}
			attackers[src] = append(attackers[src], c)
		}
	}
	if total, _ := conns.Open(netip.MustParseAddr("127.0.0.2")); total != 20 {
		t.Fatalf("%d connections open, want 20", total)
	}
	// Over its own share, an attacker is still refused.
	if _, line := dialRawFrom(t, "127.0.0.3", ts.addr); !strings.HasPrefix(line, "421 4.7.0 ") {
		t.Fatalf("sixth connection from one address: %q", line)
	}

	clk.advance(time.Minute)
	sender, greeting := dialRawFrom(t, "127.0.0.9", ts.addr)
	if !strings.HasPrefix(greeting, "220 ") {
		t.Fatalf("sender refused: %q", greeting)
	}
	sender.ehlo()
	sender.deliver("legitimate")

	// Exactly one attacker session was told to go, and not the uploading
	// one, which finishes its message.
	waitFor(t, "the eviction", func() bool {
		return strings.Count(ts.logs.String(), "idle connection closed to make room") == 1
	})
	uploading.write("x\r\n.\r\n")
	uploading.expect("250 2.0.0 ")
	closed := 0
	for src, cs := range attackers {
		for i, c := range cs {
			if c == uploading {
				continue
			}
			c.write("NOOP\r\n")
			if line, _ := c.reply(); strings.HasPrefix(line, "421 4.7.0 ") {
				closed++
				c.expectClosed()
			} else if !strings.HasPrefix(line, "250 ") {
				t.Errorf("attacker %s #%d: %q", src, i, line)
			}
		}
	}
	if closed != 1 {
		t.Errorf("%d attacker sessions closed, want 1", closed)
	}
	if _, n := conns.Open(netip.MustParseAddr("127.0.0.9")); n != 1 {
		t.Errorf("sender holds %d slots", n)
	}
	if n := len(ts.messages("bob@example.org")); n != 2 {
		t.Errorf("bob has %d messages, want 2", n)
	}
}

func TestConnectionRate(t *testing.T) {
	clk := newTestClock()
	conns := limit.New(limit.Options{Rate: 3, Now: clk.now})
	ts := newTestServer(t, func(o *Options) { o.Conns = conns })
	for i := range 3 {
		c, line := dialRawFrom(t, "127.0.0.7", ts.addr)
		if !strings.HasPrefix(line, "220 ") {
			t.Fatalf("connection %d: %q", i, line)
		}
		c.cmd("QUIT", "221 ")
	}
	c, line := dialRawFrom(t, "127.0.0.7", ts.addr)
	if !strings.HasPrefix(line, "421 4.7.0 ") || !strings.Contains(line, "slow down") {
		t.Fatalf("fourth connection in a minute: %q", line)
	}
	c.expectClosed()
	if _, line := dialRawFrom(t, "127.0.0.8", ts.addr); !strings.HasPrefix(line, "220 ") {
		t.Fatalf("another address: %q", line)
	}
	clk.advance(time.Minute)
	if _, line := dialRawFrom(t, "127.0.0.7", ts.addr); !strings.HasPrefix(line, "220 ") {
		t.Fatalf("a minute later: %q", line)
	}
}

// TestSTARTTLSEdge covers STARTTLS as our edge runs it (RFC 3207).
func TestSTARTTLSEdge(t *testing.T) {
	ts := newTestServer(t, withMode(ModeSubmission))
	subs := newTestServer(t, withMode(ModeSubmissions))
	noTLS := newTestServer(t, func(o *Options) { o.TLS = nil })

	c := dialRaw(t, ts.addr)
	c.ehlo()
	c.cmd("STARTTLS now", "501 5.5.4 ")
	c.cmd("MAIL FROM:<alice@example.org>", "530 5.7.0 ")
	c.cmd("starttls", "220 ")
	tc := tls.Client(c.nc, clientTLS())
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.nc, c.r = tc, newReader(tc)
	// §4.2: the client starts over with EHLO.
	c.cmd("AUTH PLAIN "+b64("\x00alice@example.org\x00alice-secret"), "503 5.5.1 ")
	c.cmd("MAIL FROM:<alice@example.org>", "503 5.5.1 ")
	c.ehlo()
	c.cmd("STARTTLS", "503 5.5.1 ")
	c.authPlain("alice@example.org", "alice-secret", "235 ")
	c.deliverFrom("alice@example.org", "over STARTTLS")
	got := ts.messages("bob@example.org")
	if len(got) != 1 || !strings.Contains(string(got[0]), "from client.example (") || !strings.Contains(string(got[0]), "version=TLS1.3") {
		t.Fatalf("stored: %q", got)
	}

	mta := newTestServer(t)
	m := dialRaw(t, mta.addr)
	m.ehlo()
	m.cmd("MAIL FROM:<x@remote.test>", "250 ")
	m.cmd("STARTTLS", "503 5.5.1 ") // not inside a transaction
	m.cmd("RSET", "250 ")
	m.cmd("STARTTLS", "220 ")

	s := dialRawTLS(t, subs.addr)
	s.ehlo()
	s.cmd("STARTTLS", "503 5.5.1 ")

	n := dialRaw(t, noTLS.addr)
	if caps := n.ehlo(); strings.Contains(strings.Join(caps, " "), "STARTTLS") {
		t.Errorf("STARTTLS offered without TLS: %q", caps)
	}
	n.cmd("STARTTLS", "502 5.5.1 ")
	n.cmd("NOOP", "250 ")
}

// TestBDATCutShort: go-smtp ends a BDAT chunk at EOF as if it were whole;
// the truncated message must not be delivered.
func TestBDATCutShort(t *testing.T) {
	ts := newTestServer(t)
	c := dialRaw(t, ts.addr)
	c.ehlo()
	c.cmd("MAIL FROM:<x@remote.test>", "250 ")
	c.cmd("RCPT TO:<bob@example.org>", "250 ")
	c.write("BDAT 1000 LAST\r\nSubject: cut\r\n\r\nonly part of it")
	c.nc.(*net.TCPConn).CloseWrite()
	waitFor(t, "the server to notice", func() bool { return strings.Contains(ts.logs.String(), "message not received") })
	if n := ts.total(); n != 0 {
		t.Errorf("%d messages stored", n)
	}
}
