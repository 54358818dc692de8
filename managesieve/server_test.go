package managesieve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/certs/certstest"
	"github.com/posthouse/posthouse/sievestore"
)

const (
	testUser = "alice@example.org"
	testPass = "correct horse battery"
)

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer is a ManageSieve server on loopback over a real auth.DB and
// sievestore.Store in a temporary directory.
type testServer struct {
	addr  string
	srv   *Server
	store *sievestore.Store
	auth  *auth.DB
	tls   *tls.Config // the client's
	logs  *syncBuffer
	done  chan error
}

type testOption func(*Options, *sievestore.Options)

func withOptions(f func(*Options)) testOption {
	return func(o *Options, _ *sievestore.Options) { f(o) }
}

func withStoreOptions(f func(*sievestore.Options)) testOption {
	return func(_ *Options, so *sievestore.Options) { f(so) }
}

// openTestDBs opens a user database with testUser and bob, and a script
// store, in dir.
func openTestDBs(t testing.TB, dir string, so sievestore.Options) (*auth.DB, *sievestore.Store) {
	t.Helper()
	ctx := context.Background()
	db, err := auth.Open(ctx, filepath.Join(dir, "users.sqlite"), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.AddDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	for user, pass := range map[string]string{testUser: testPass, "bob@example.org": "bobpass"} {
		if _, err := db.AddUser(ctx, user, pass, 0); err != nil {
			t.Fatal(err)
		}
	}
	st, err := sievestore.Open(ctx, filepath.Join(dir, "sieve.sqlite"), so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return db, st
}

func newTestServer(t testing.TB, opts ...testOption) *testServer {
	t.Helper()
	ca := certstest.Default()
	ts := &testServer{
		tls:  ca.ClientConfig("127.0.0.1"),
		logs: &syncBuffer{},
		done: make(chan error, 1),
	}
	var w io.Writer = ts.logs
	if os.Getenv("MANAGESIEVE_TEST_LOG") != "" {
		w = io.MultiWriter(ts.logs, os.Stderr)
	}
	o := Options{
		Logger:           slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hostname:         "sieve.example.org",
		TLS:              ca.ServerConfig(certstest.Loopback...),
		LoopbackIsSecure: true,
	}
	so := sievestore.Options{MaxScripts: 3, MaxScriptBytes: 4096}
	for _, f := range opts {
		f(&o, &so)
	}
	ts.auth, ts.store = openTestDBs(t, t.TempDir(), so)
	o.Store, o.Auth = ts.store, ts.auth
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

// client is a raw ManageSieve client for scripts.
type client struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
	// greeting is the capability response read at connect.
	greeting response
}

// response is one server response: data lines (a literal inlined, its
// {n} announcement removed), then the status line.
type response struct {
	data   []string
	status string
}

func (ts *testServer) dial(t testing.TB) *client {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, r: bufio.NewReader(c)}
	cl.greeting = cl.read()
	if !strings.HasPrefix(cl.greeting.status, "OK") {
		t.Fatalf("greeting %+v", cl.greeting)
	}
	return cl
}

// login dials and authenticates as testUser with PLAIN and an initial
// response.
func (ts *testServer) login(t testing.TB) *client {
	t.Helper()
	c := ts.dial(t)
	c.ok(`AUTHENTICATE "PLAIN" "` + plainIR(testUser, testPass) + `"`)
	return c
}

func plainIR(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// send writes raw octets; line adds CRLF.
func (c *client) send(raw string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.c, raw); err != nil {
		c.t.Fatalf("send %q: %v", raw, err)
	}
}

func (c *client) line(l string) { c.t.Helper(); c.send(l + "\r\n") }

// readLine reads one line without CRLF; a line ending in a literal
// announcement {n} gets the literal and the rest of its line appended.
func (c *client) readLine() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line without CRLF: %q", l)
	}
	l = l[:len(l)-2]
	if i := strings.LastIndexByte(l, '{'); i >= 0 && strings.HasSuffix(l, "}") {
		if n, err := strconv.Atoi(l[i+1 : len(l)-1]); err == nil {
			buf := make([]byte, n)
			if _, err := io.ReadFull(c.r, buf); err != nil {
				c.t.Fatalf("literal: %v", err)
			}
			return l[:i] + string(buf) + c.readLine()
		}
	}
	return l
}

// read reads a response up to its status line.
func (c *client) read() response {
	c.t.Helper()
	var r response
	for {
		l := c.readLine()
		if strings.HasPrefix(l, "OK") || strings.HasPrefix(l, "NO") || strings.HasPrefix(l, "BYE") {
			r.status = l
			return r
		}
		r.data = append(r.data, l)
	}
}

// cmd sends a command line and reads the response.
func (c *client) cmd(l string) response {
	c.t.Helper()
	c.line(l)
	return c.read()
}

// ok sends l and wants OK.
func (c *client) ok(l string) response {
	c.t.Helper()
	r := c.cmd(l)
	if !strings.HasPrefix(r.status, "OK") {
		c.t.Fatalf("%q: got %q, want OK", l, r.status)
	}
	return r
}

// want sends l and wants a status line starting with prefix.
func (c *client) want(l, prefix string) response {
	c.t.Helper()
	r := c.cmd(l)
	if !strings.HasPrefix(r.status, prefix) {
		c.t.Fatalf("%q: got %q, want %q", l, r.status, prefix)
	}
	return r
}

// expectClosed waits for the server to close the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c.r); err != nil || len(b) > 0 {
		c.t.Fatalf("want close, got %q, %v", b, err)
	}
}

// startTLS sends STARTTLS, runs the handshake and reads the capability
// response the server sends after it.
func (c *client) startTLS(cfg *tls.Config) response {
	c.t.Helper()
	c.ok("STARTTLS")
	tc := tls.Client(c.c, cfg)
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.c, c.r = tc, bufio.NewReader(tc)
	r := c.read()
	if !strings.HasPrefix(r.status, "OK") {
		c.t.Fatalf("after STARTTLS: %+v", r)
	}
	return r
}

// caps turns a capability response into name → value.
func caps(r response) map[string]string {
	m := map[string]string{}
	for _, l := range r.data {
		name, value, _ := strings.Cut(l, " ")
		m[strings.Trim(name, `"`)] = strings.Trim(value, `"`)
	}
	return m
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newBufReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// tlsClient runs a client handshake over c's connection.
func tlsClient(t testing.TB, c *client) *tls.Conn {
	t.Helper()
	tc := tls.Client(c.c, certstest.Default().ClientConfig("127.0.0.1"))
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc
}
