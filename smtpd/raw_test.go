package smtpd

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"
)

// rawConn speaks SMTP by hand, for what real clients never send.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
	c.expect("220 ")
	return c
}

func dialRawTLS(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := tls.Dial("tcp", addr, clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
	c.expect("220 ")
	return c
}

func (c *rawConn) write(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// reply reads one (possibly multi-line) reply and returns its last line
// and all lines.
func (c *rawConn) reply() (string, []string) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply (after %q): %v", lines, err)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return line, lines
		}
	}
}

// expect reads a reply and checks that its last line starts with want.
func (c *rawConn) expect(want string) string {
	c.t.Helper()
	last, all := c.reply()
	if !strings.HasPrefix(last, want) {
		c.t.Fatalf("reply %q, want prefix %q", all, want)
	}
	return last
}

// cmd sends one command line and checks the reply.
func (c *rawConn) cmd(line, want string) string {
	c.t.Helper()
	c.write(line + "\r\n")
	return c.expect(want)
}

// ehlo returns the capability lines.
func (c *rawConn) ehlo() []string {
	c.t.Helper()
	c.write("EHLO client.example\r\n")
	last, all := c.reply()
	if !strings.HasPrefix(last, "250") {
		c.t.Fatalf("EHLO: %q", all)
	}
	var caps []string
	for _, l := range all[1:] {
		caps = append(caps, l[4:])
	}
	return caps
}

func (c *rawConn) starttls() {
	c.t.Helper()
	c.cmd("STARTTLS", "220 ")
	tc := tls.Client(c.nc, clientTLS())
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	tc.SetDeadline(time.Time{})
	c.nc = tc
	c.r = bufio.NewReader(tc)
}

// authPlain logs in with AUTH PLAIN and an initial response.
func (c *rawConn) authPlain(user, pass, want string) {
	c.t.Helper()
	c.cmd("AUTH PLAIN "+b64("\x00"+user+"\x00"+pass), want)
}

// expectClosed checks that the server closes the connection without
// another reply.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := c.r.ReadString('\n')
	switch {
	case err == nil:
		c.t.Fatalf("reply %q where the connection should close", line)
	case isTimeout(err):
		c.t.Fatal("connection still open")
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func newReader(nc net.Conn) *bufio.Reader {
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	return bufio.NewReader(nc)
}
