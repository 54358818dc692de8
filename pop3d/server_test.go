package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/certs/certstest"
	"github.com/posthouse/posthouse/mailstore"
)

const (
	testUser = "alice@example.org"
	testPass = "correct horse battery"
)

// testServer is a pop3d.Server on 127.0.0.1:0 with a store and a fake
// authenticator.
type testServer struct {
	srv   *Server
	addr  string
	store Store // the server's: MailStore(disk), or a fakeStore
	// disk is the maildir store under store; nil when the server runs on
	// a fakeStore.
	disk mailstore.Store
	auth *fakeAuth
	tls  *tls.Config // client side: trusts the server's certificate
	done chan error
}

type testOption func(*Options)

func withOptions(f func(*Options)) testOption { return testOption(f) }

// testLogger writes the server's log to the test log.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("POP3D_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newTestServer(t testing.TB, opts ...testOption) *testServer {
	t.Helper()
	ca := certstest.Default()
	serverTLS, clientTLS := ca.ServerConfig(certstest.Loopback...), ca.ClientConfig("127.0.0.1")
	disk := newTestStore(t)
	ts := &testServer{
		store: MailStore(disk),
		disk:  disk,
		auth:  newFakeAuth(map[string]string{testUser: testPass, "bob@example.org": "bobpass"}),
		tls:   clientTLS,
		done:  make(chan error, 1),
	}
	o := Options{
		Logger:           testLogger(t),
		Hostname:         "pop.example.org",
		TLS:              serverTLS,
		LoopbackIsSecure: true,
		Store:            ts.store,
		Auth:             ts.auth,
	}
	for _, f := range opts {
		f(&o)
	}
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	ts.addr = ln.Addr().String()
	go func() { ts.done <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-ts.done; err != ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ts
}

// deliver puts a message into user's INBOX through the store, as smtpd
// would.
func (ts *testServer) deliver(t testing.TB, user string, data []byte) {
	t.Helper()
	if fs, ok := ts.store.(*fakeStore); ok {
		fs.deliver(user, data)
		return
	}
	ctx := context.Background()
	acct, err := ts.disk.Open(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	if _, err := acct.Deliver(ctx, bytes.NewReader(data), mailstore.DeliverOptions{}); err != nil {
		t.Fatal(err)
	}
}

// client is a raw POP3 client for scripts.
type client struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func (ts *testServer) dial(t testing.TB) *client {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	cl.expectOK()
	return cl
}

func (ts *testServer) dialTLS(t testing.TB) *client {
	t.Helper()
	c, err := tls.Dial("tcp", ts.addr, ts.tls)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	cl.expectOK()
	return cl
}

// login dials and logs in as testUser with USER/PASS.
func (ts *testServer) login(t testing.TB) *client {
	t.Helper()
	c := ts.dial(t)
	c.cmdOK("USER " + testUser)
	c.cmdOK("PASS " + testPass)
	return c
}

func (c *client) send(line string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.c, line+"\r\n"); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// line reads one reply line without its CRLF.
func (c *client) line() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading reply: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("reply line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *client) expectOK() string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, "+OK") {
		c.t.Fatalf("got %q, want +OK", l)
	}
	return l
}

func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line)
	return c.line()
}

func (c *client) cmdOK(line string) string {
	c.t.Helper()
	c.send(line)
	l := c.line()
	if !strings.HasPrefix(l, "+OK") {
		c.t.Fatalf("%s: got %q, want +OK", line, l)
	}
	return l
}

func (c *client) cmdErr(line, wantPrefix string) string {
	c.t.Helper()
	c.send(line)
	l := c.line()
	if !strings.HasPrefix(l, wantPrefix) {
		c.t.Fatalf("%s: got %q, want %q…", line, l, wantPrefix)
	}
	return l
}

// multiRaw reads a multi-line body up to the terminator and undoes the
// byte-stuffing, returning the exact octets.
func (c *client) multiRaw() []byte {
	c.t.Helper()
	var out bytes.Buffer
	for {
		c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		l, err := c.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			out.Write(l)
			// Continue the same line: no stuffing check mid-line.
			for err == bufio.ErrBufferFull {
				l, err = c.r.ReadSlice('\n')
				out.Write(l)
			}
			if err != nil {
				c.t.Fatalf("reading multi-line: %v", err)
			}
			continue
		}
		if err != nil {
			c.t.Fatalf("reading multi-line: %v", err)
		}
		if string(l) == ".\r\n" {
			return out.Bytes()
		}
		if l[0] == '.' {
			l = l[1:]
		}
		out.Write(l)
	}
}

// multi reads a multi-line body as lines.
func (c *client) multi() []string {
	c.t.Helper()
	b := c.multiRaw()
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n")
}

// expectClosed checks the server closed the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c.r)
	if err != nil && !isConnReset(err) {
		c.t.Fatalf("waiting for close: %v (read %q)", err, b)
	}
	if len(b) != 0 {
		c.t.Fatalf("unexpected data before close: %q", b)
	}
}

func isConnReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// inboxUIDs lists INBOX through the store, as IMAP would see it.
func (ts *testServer) inbox(t testing.TB, user string) mailstore.Snapshot {
	t.Helper()
	ctx := context.Background()
	acct, err := ts.store.Open(ctx, user)
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
	return snap
}

// msg builds a small CRLF message.
func msg(subject, body string) []byte {
	return []byte("From: bob@example.org\r\nTo: alice@example.org\r\nSubject: " + subject + "\r\n\r\n" + body)
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
