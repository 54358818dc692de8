package queue

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dns/dnstest"
	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

// fakeClock is a movable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// received is one message the fake remote accepted.
type received struct {
	from  string
	rcpts []string
	body  []byte
	tls   bool
	helo  string
	opts  smtp.MailOptions
}

// fakeRemote is a receiving SMTP server on loopback, scripted with a map
// of replies per recipient: each RCPT for that address takes the next
// reply of its list (the last one repeats); nil accepts.
type fakeRemote struct {
	t      *testing.T
	srv    *smtp.Server
	port   int
	mu     sync.Mutex
	rcpt   map[string][]*smtp.SMTPError
	data   []*smtp.SMTPError // replies to end of data, consumed in order; nil accepts
	got    []received
	mails  int           // MAIL commands seen
	stall  chan struct{} // when set, Data blocks until it is closed
	inData chan struct{} // signalled when Data starts
}

func newFakeRemote(t *testing.T, configure ...func(*smtp.Server)) *fakeRemote {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return newFakeRemoteOn(t, ln, configure...)
}

// newFakeRemoteOn serves the fake remote on ln.
func newFakeRemoteOn(t *testing.T, ln net.Listener, configure ...func(*smtp.Server)) *fakeRemote {
	t.Helper()
	f := &fakeRemote{t: t, rcpt: map[string][]*smtp.SMTPError{}, inData: make(chan struct{}, 16)}
	f.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &fakeSession{f: f, c: c}, nil
	}))
	f.srv.Domain = "mx.b.test"
	f.srv.ReadTimeout = 10 * time.Second
	f.srv.WriteTimeout = 10 * time.Second
	f.srv.MaxMessageBytes = 10 << 20
	f.srv.MaxRecipients = 200
	f.srv.ErrorLog = nopLogger{}
	for _, fn := range configure {
		fn(f.srv)
	}
	f.port = ln.Addr().(*net.TCPAddr).Port
	go f.srv.Serve(ln)
	t.Cleanup(func() { f.srv.Close() })
	return f
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}

func (f *fakeRemote) script(rcpt string, replies ...*smtp.SMTPError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rcpt[rcpt] = replies
}

func (f *fakeRemote) messages() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.got...)
}

// count returns how many accepted messages went to rcpt.
func (f *fakeRemote) count(rcpt string) int {
	n := 0
	for _, m := range f.messages() {
		for _, r := range m.rcpts {
			if r == rcpt {
				n++
			}
		}
	}
	return n
}

func smtpErr(code int, enh smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

type fakeSession struct {
	f     *fakeRemote
	c     *smtp.Conn
	from  string
	opts  smtp.MailOptions
	rcpts []string
}

func (s *fakeSession) Reset()        { s.from, s.rcpts = "", nil }
func (s *fakeSession) Logout() error { return nil }
func (s *fakeSession) Mail(from string, opts *smtp.MailOptions) error {
	s.f.mu.Lock()
	s.f.mails++
	s.f.mu.Unlock()
	s.from = from
	if opts != nil {
		s.opts = *opts
	}
	return nil
}

func (s *fakeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	list := s.f.rcpt[to]
	var reply *smtp.SMTPError
	if len(list) > 0 {
		reply = list[0]
		if len(list) > 1 {
			s.f.rcpt[to] = list[1:]
		}
	}
	if reply != nil {
		return reply
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *fakeSession) Data(r io.Reader) error {
	// A session that enters DATA while stalled stays stalled, even if the
	// test lifts the stall while the body is still coming in.
	s.f.mu.Lock()
	stall := s.f.stall
	s.f.mu.Unlock()
	select {
	case s.f.inData <- struct{}{}:
	default:
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.f.mu.Lock()
	var reply *smtp.SMTPError
	if len(s.f.data) > 0 {
		reply = s.f.data[0]
		s.f.data = s.f.data[1:]
	}
	s.f.mu.Unlock()
	if stall != nil {
		<-stall
		return smtpErr(421, smtp.EnhancedCode{4, 3, 0}, "shutting down")
	}
	if reply != nil {
		return reply
	}
	_, isTLS := s.c.TLSConnectionState()
	s.f.mu.Lock()
	s.f.got = append(s.f.got, received{from: s.from, rcpts: s.rcpts, body: body, tls: isTLS, helo: s.c.Hostname(), opts: s.opts})
	s.f.mu.Unlock()
	return nil
}

// fakeLocals: a.test is local with the listed users.
type fakeLocals struct{ users map[string]bool }

func (l fakeLocals) IsLocalDomain(_ context.Context, d string) (bool, error) {
	return d == "a.test", nil
}
func (l fakeLocals) Resolve(_ context.Context, addr string) ([]string, []string, error) {
	if l.users[addr] {
		return []string{addr}, nil, nil
	}
	return nil, nil, auth.ErrNoSuchUser
}

// env is a queue wired to a loopback DNS server, a fake remote, fakes, and
// the real delivery pipeline over a maildir store for local copies (DSNs,
// mostly).
type env struct {
	t      *testing.T
	dir    string
	q      *Queue
	dns    *dnstest.Server
	remote *fakeRemote
	clock  *fakeClock
	store  *maildir.Store
	quota  atomic.Int64 // every account's quota in bytes, 0: unlimited
	opts   Options
	mu     sync.Mutex
	dialed []string
}

func newEnv(t *testing.T, remote *fakeRemote, tweak ...func(*Options)) *env {
	t.Helper()
	e := &env{
		t:      t,
		dir:    t.TempDir(),
		dns:    dnstest.NewServer(t),
		remote: remote,
		clock:  &fakeClock{t: time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)},
	}
	store, err := maildir.Open(context.Background(), filepath.Join(t.TempDir(), "accounts"), maildir.Options{
		Quota: func(context.Context, string) (int64, error) { return e.quota.Load(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e.store = store
	e.dns.Add("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	res, err := dns.New(dns.Options{Server: e.dns.Addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	e.opts = Options{
		DataDir:    e.dir,
		Hostname:   "mail.a.test",
		Logger:     testLogger(t),
		Resolver:   res,
		RemotePort: remote.port,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			e.mu.Lock()
			e.dialed = append(e.dialed, addr)
			e.mu.Unlock()
			return dialer.DialContext(ctx, network, addr)
		},
		Now:          e.clock.Now,
		PollInterval: 50 * time.Millisecond,
		Locals:       fakeLocals{users: map[string]bool{"alice@a.test": true}},
	}
	if onPostgres {
		e.opts.Postgres = pgPool(t, pgtest.NewDatabase(t))
		e.opts.Node = "node-a"
	}
	for _, fn := range tweak {
		fn(&e.opts)
	}
	e.open()
	return e
}

// acceptOnly is newEnv with its queue stopped and one opened in its place
// that accepts but was never started, so it delivers nothing (the test
// closes it, or the cleanup does; e.open starts a delivering one).
func acceptOnly(t *testing.T, remote *fakeRemote, tweak ...func(*Options)) (*env, *Queue) {
	t.Helper()
	e := newEnv(t, remote, tweak...)
	e.stop()
	q, err := Open(context.Background(), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return e, q
}

// onPostgres makes newEnv's queues keep their messages in PostgreSQL
// (TestOnPostgres sets it while it runs behaviour tests again).
var onPostgres bool

func (e *env) open() {
	e.t.Helper()
	switch l := e.opts.Local.(type) {
	case nil:
		e.opts.Local = newTestLocal(e.t, e.opts, e.store)
	case localMarker:
		e.opts.Local = newTestLocal(e.t, e.opts, e.store, l.filters...)
	}
	q, err := Open(context.Background(), e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.q = q
	q.Start()
	e.t.Cleanup(e.stop)
}

func (e *env) stop() {
	if e.q == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.q.Shutdown(ctx); err != nil {
		e.t.Errorf("shutdown: %v", err)
	}
	e.q.Close()
	e.q = nil
}

// inbox returns account's INBOX messages in delivery order.
func (e *env) inbox(account string) [][]byte {
	e.t.Helper()
	ctx := context.Background()
	a, err := e.store.Open(ctx, account)
	if err != nil {
		e.t.Fatal(err)
	}
	defer a.Close()
	mb, err := a.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		e.t.Fatal(err)
	}
	snap, err := a.Snapshot(ctx, mb.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	var out [][]byte
	for _, m := range snap.Messages {
		r, _, err := a.OpenMessage(ctx, mb.ID, m.UID)
		if err != nil {
			e.t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func (e *env) dials() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.dialed...)
}

func (e *env) port() string { return strconv.Itoa(e.remote.port) }

// advance moves the clock and wakes the scheduler.
func (e *env) advance(d time.Duration) {
	e.clock.Advance(d)
	e.q.Kick()
}

const testBody = "From: Alice <alice@a.test>\r\nTo: <bob@b.test>\r\nSubject: hello\r\nMessage-ID: <1@a.test>\r\nDate: Sun, 22 Nov 2026 06:00:00 +0000\r\n\r\nHi Bob.\r\n.leading dot\r\n"

func (e *env) enqueue(from string, rcpts ...string) string {
	e.t.Helper()
	id, err := e.q.Enqueue(context.Background(), from, rcpts, strings.NewReader(testBody))
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rcptState returns a recipient's state, "" once the message left the queue.
func (e *env) rcptState(id, rcpt string) (State, string) {
	m, err := e.q.Get(context.Background(), id)
	if errors.Is(err, ErrNotFound) {
		return "", ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range m.Recipients {
		if r.Addr == rcpt {
			return r.State, r.Reply
		}
	}
	return "", ""
}

func (e *env) gone(id string) bool {
	_, err := e.q.Get(context.Background(), id)
	if errors.Is(err, ErrNotFound) {
		_, ferr := os.Stat(e.q.spoolPath(id))
		return errors.Is(ferr, os.ErrNotExist)
	}
	return false
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
