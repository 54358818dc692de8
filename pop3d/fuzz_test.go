package pop3d

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/certs/certstest"
	"github.com/posthouse/posthouse/server"
)

// FuzzParseCommand checks the parser never panics and that what it
// accepts is well formed.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"STAT", "list 1", "TOP 1 10", "PASS a b  c", "AUTH PLAIN =", "\x00", "", " ", "RETR\t1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, err := parseCommand(line)
		if err != nil {
			return
		}
		if len(cmd.verb) < 1 || len(cmd.verb) > maxKeyword || strings.ToUpper(cmd.verb) != cmd.verb {
			t.Fatalf("bad verb %q from %q", cmd.verb, line)
		}
		if len(cmd.args) > maxArgs {
			t.Fatalf("%d args from %q", len(cmd.args), line)
		}
		for _, a := range cmd.args {
			if a == "" || strings.Contains(a, " ") {
				t.Fatalf("bad arg %q from %q", a, line)
			}
			if !strings.Contains(cmd.rest, a) {
				t.Fatalf("arg %q not in rest %q", a, cmd.rest)
			}
		}
		if bytes.ContainsAny(line, "\x00\r\n") {
			t.Fatalf("accepted control characters in %q", line)
		}
	})
}

// pipeConn is a net.Conn that reads a fixed input and records output; its
// deadlines do nothing. It lets a fuzz iteration run a whole session
// without sockets.
type pipeConn struct {
	in  io.Reader
	out bytes.Buffer
}

func (c *pipeConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *pipeConn) Close() error                { return nil }
func (c *pipeConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 110} }
func (c *pipeConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzSession runs a whole session on client input against a fake store
// holding a few messages. Whatever the input: no panic, every reply line
// ends in CRLF, no internal error reaches the wire, the maildrop lock is
// released, and nothing is deleted unless the input contains QUIT.
func FuzzSession(f *testing.F) {
	login := "USER " + testUser + "\r\nPASS " + testPass + "\r\n"
	for _, s := range []string{
		login + "STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 1\r\nDELE 1\r\nRSET\r\nDELE 3\r\nQUIT\r\n",
		login + "DELE 1\r\nDELE 2\r\nLIST\r\n",
		"CAPA\r\nAUTH PLAIN\r\n" + plainIR(testUser, testPass) + "\r\nLIST 2\r\nQUIT\r\n",
		"AUTH LOGIN\r\n" + b64(testUser) + "\r\n*\r\nAUTH\r\nQUIT\r\n",
		"STLS\r\nUSER x\r\n",
		"\x00\x00\r\n\n\n" + strings.Repeat("x", 300) + "\r\nQUIT\r\n",
		login + "TOP 1 0\r\nTOP 1 99999999999999\r\nRETR 4\r\nLIST 0\r\nNOOP\r\nQUIT\n",
	} {
		f.Add([]byte(s))
	}
	serverTLS := certstest.Default().ServerConfig(certstest.Loopback...)
	f.Fuzz(func(t *testing.T, input []byte) {
		store := newFakeStore()
		for _, m := range [][]byte{msg("a", "one\r\n.two\r\n"), msg("b", "x\r\n"), msg("c", "..\r\n.\r\n")} {
			store.deliver(testUser, m)
		}
		srv, err := New(Options{
			Store:            store,
			Auth:             newFakeAuth(map[string]string{testUser: testPass}),
			TLS:              serverTLS,
			LoopbackIsSecure: true,
			Hostname:         "fuzz",
		})
		if err != nil {
			t.Fatal(err)
		}
		conn := &pipeConn{in: bytes.NewReader(input)}
		sess := newSession(context.Background(), srv, conn, "fuzz", server.RemoteAddr(conn))
		sess.run()

		out := conn.out.Bytes()
		if !bytes.HasPrefix(out, []byte("+OK ")) {
			t.Fatalf("output does not start with the greeting: %q", out)
		}
		if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) && !bytes.Contains(input, []byte("STLS")) {
			t.Fatalf("output does not end in CRLF: %q", out)
		}
		if bytes.Contains(out, []byte("internal server error")) {
			t.Fatalf("internal error on input %q:\n%s", input, out)
		}
		d := store.accounts[testUser]
		if d.locked {
			t.Fatal("maildrop still locked after the session")
		}
		if len(d.msgs) != 3 && !bytes.Contains(bytes.ToUpper(input), []byte("QUIT")) {
			t.Fatalf("messages deleted without QUIT: %d left", len(d.msgs))
		}
	})
}
