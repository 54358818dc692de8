package imapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/certs/certstest"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

// fakeAuth accepts the users in its map.
type fakeAuth struct {
	mu    sync.Mutex
	users map[string]string
	fails int
}

func (a *fakeAuth) Authenticate(ctx context.Context, username, password string, remote netip.Addr) (auth.User, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if username == "throttled@example.org" {
		return auth.User{}, auth.ErrThrottled
	}
	if p, ok := a.users[username]; !ok || p != password {
		a.fails++
		return auth.User{}, auth.ErrBadCredentials
	}
	return auth.User{Address: username}, nil
}

func (a *fakeAuth) Mechanisms() []string { return []string{"PLAIN"} }

func (a *fakeAuth) NewSASLServer(ctx context.Context, mech string, remote netip.Addr, done func(auth.User)) (sasl.Server, error) {
	if mech != "PLAIN" {
		return nil, fmt.Errorf("unsupported")
	}
	return fakePlain{sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return auth.ErrBadCredentials
		}
		u, err := a.Authenticate(ctx, username, password, remote)
		if err != nil {
			return err
		}
		done(u)
		return nil
	})}, nil
}

// fakePlain reports a malformed PLAIN response as auth's servers do: as
// ErrBadCredentials.
type fakePlain struct{ sasl.Server }

func (p fakePlain) Next(resp []byte) ([]byte, bool, error) {
	ch, done, err := p.Server.Next(resp)
	if err != nil && err.Error() == "sasl: invalid response" {
		err = auth.ErrBadCredentials
	}
	return ch, done, err
}

type testServer struct {
	srv   *Server
	addr  string
	store mailstore.Store
	auth  *fakeAuth
	tls   *tls.Config
}

type testOption func(*Options)

// storeFactory makes the store newTestServer runs on; benchmarks swap in
// a store they filled beforehand.
var storeFactory = newTestStore

// storeInDir makes newTestServer run on a maildir store in dir, for the
// rest of the test, so that the test can open a second store there: another
// process, whose events the server never hears.
func storeInDir(t *testing.T, dir string) {
	storeFactory = func(t testing.TB) mailstore.Store {
		s, err := maildir.Open(context.Background(), dir, maildir.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Cleanup(func() { storeFactory = newTestStore })
}

// inOtherProcess runs fn on user's account opened through a second store
// on dir (see storeInDir), then closes both.
func inOtherProcess(t *testing.T, dir, user string, fn func(acct mailstore.Account)) {
	t.Helper()
	other, err := maildir.Open(context.Background(), dir, maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	acct, err := other.Open(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	fn(acct)
}

// announcedFirst reports whether, in a command's responses u, a FLAGS
// listing kw comes before the first FETCH of seq showing it.
func announcedFirst(u []string, kw string, seq int) bool {
	flagsAt, fetchAt := -1, -1
	fetch := fmt.Sprintf("* %d FETCH", seq)
	for i, l := range u {
		switch {
		case strings.HasPrefix(l, "* FLAGS ") && strings.Contains(l, kw) && flagsAt < 0:
			flagsAt = i
		case strings.HasPrefix(l, fetch) && strings.Contains(l, kw) && fetchAt < 0:
			fetchAt = i
		}
	}
	return flagsAt >= 0 && fetchAt >= 0 && flagsAt < fetchAt
}

func newTestServer(t testing.TB, opts ...testOption) *testServer {
	t.Helper()
	ts := &testServer{
		store: storeFactory(t),
		auth: &fakeAuth{users: map[string]string{
			"alice@example.org": "alicepw",
			"bob@example.org":   "bobpw",
		}},
		tls: certstest.Default().ServerConfig(certstest.Loopback...),
	}
	level := slog.LevelWarn
	if os.Getenv("IMAPD_DEBUG") != "" {
		level = slog.LevelDebug
	}
	o := Options{
		Logger:           slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		TLS:              ts.tls,
		LoopbackIsSecure: true,
		MaxAppendSize:    1 << 20,
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
	ts.srv, ts.addr = srv, ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			buf := make([]byte, 1<<20)
			t.Errorf("Shutdown: %v\n%s", err, buf[:runtime.Stack(buf, true)])
		}
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve: %v, want ErrServerClosed", err)
		}
		ts.store.Close()
	})
	return ts
}

// deliver puts a message into an account's mailbox the way smtpd does.
func (ts *testServer) deliver(t testing.TB, user, mailbox, body string) mailstore.AppendResult {
	t.Helper()
	acct, err := ts.store.Open(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	res, err := acct.Deliver(context.Background(), strings.NewReader(body), mailstore.DeliverOptions{Mailbox: mailbox})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func testMessage(i int) string {
	return fmt.Sprintf("From: Sender %d <sender%d@example.net>\r\n"+
		"To: alice@example.org\r\n"+
		"Subject: message number %d\r\n"+
		"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n"+
		"Message-ID: <m%d@example.net>\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n"+
		"\r\n"+
		"Hello, this is body %d.\r\nSecond line.\r\n", i, i, i, i, i)
}

// client dials the server with go-imap's client and logs in.
func (ts *testServer) client(t testing.TB, user, pass string, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(ts.addr, &imapclient.Options{UnilateralDataHandler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// aliceTwice delivers n test messages to alice's INBOX and returns two
// sessions of hers, each with INBOX selected.
func (ts *testServer) aliceTwice(t testing.TB, n int) (a, b *rawConn) {
	t.Helper()
	for i := 1; i <= n; i++ {
		ts.deliver(t, "alice@example.org", "", testMessage(i))
	}
	a, b = ts.raw(t), ts.raw(t)
	for _, c := range []*rawConn{a, b} {
		c.login("alice@example.org", "alicepw")
		c.mustOK("SELECT INBOX")
	}
	return a, b
}

// rawConn is a line-level IMAP client for scripts clients never send.
type rawConn struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	tag  int
}

func (ts *testServer) raw(t testing.TB) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rc := &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
	if g := rc.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting: %q", g)
	}
	return rc
}

func (rc *rawConn) line() string {
	rc.t.Helper()
	rc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := rc.r.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// readLiteralLine reads a line; if it announces a literal, the literal's
// bytes and the rest of the line are appended.
func (rc *rawConn) response() string {
	rc.t.Helper()
	l := rc.line()
	for {
		m := literalRE.FindStringSubmatch(l)
		if m == nil {
			return l
		}
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(rc.r, buf); err != nil {
			rc.t.Fatalf("literal: %v", err)
		}
		l = l + "\r\n" + string(buf) + rc.line()
	}
}

var literalRE = regexp.MustCompile(`~?\{(\d+)\+?\}$`)

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	rc.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.conn.Write([]byte(s)); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// cmd sends one tagged command and returns the untagged responses and the
// tagged completion.
func (rc *rawConn) cmd(format string, args ...any) (untagged []string, done string) {
	rc.t.Helper()
	rc.tag++
	tag := fmt.Sprintf("T%d", rc.tag)
	rc.send(tag + " " + fmt.Sprintf(format, args...) + "\r\n")
	return rc.until(tag)
}

func (rc *rawConn) until(tag string) (untagged []string, done string) {
	rc.t.Helper()
	for {
		l := rc.response()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, strings.TrimPrefix(l, tag+" ")
		}
		untagged = append(untagged, l)
	}
}

func (rc *rawConn) mustOK(format string, args ...any) []string {
	rc.t.Helper()
	u, d := rc.cmd(format, args...)
	if !strings.HasPrefix(d, "OK") {
		rc.t.Fatalf("%s: %s (untagged %q)", fmt.Sprintf(format, args...), d, u)
	}
	return u
}

func (rc *rawConn) login(user, pass string) {
	rc.t.Helper()
	rc.mustOK("LOGIN %s %s", user, pass)
}

func hasLine(lines []string, substr string) bool {
	for _, l := range lines {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
