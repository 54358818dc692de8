package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/internal/logbuf"

	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/certs/certstest"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

// fakeDirectory is a recording stand-in for *auth.DB.
type fakeDirectory struct {
	mu         sync.Mutex
	domains    map[string]bool
	passwords  map[string]string          // user → password
	aliases    map[string]auth.Resolution // address → targets
	sendAs     map[string][]string        // user → extra addresses it owns
	resolveErr error
	authErr    error // returned by every SASL exchange when set
}

func newFakeDirectory() *fakeDirectory {
	return &fakeDirectory{
		domains: map[string]bool{"example.org": true, "example.net": true},
		passwords: map[string]string{
			"alice@example.org": "alice-secret",
			"bob@example.org":   "bob-secret",
			"carol@example.net": "carol-secret",
		},
		aliases: map[string]auth.Resolution{
			"team@example.org":    {Local: []string{"alice@example.org", "bob@example.org"}},
			"fwd@example.org":     {Local: []string{"bob@example.org"}, Remote: []string{"bob@elsewhere.test"}},
			"outside@example.org": {Remote: []string{"someone@elsewhere.test"}},
		},
		sendAs: map[string][]string{"alice@example.org": {"team@example.org"}},
	}
}

func (d *fakeDirectory) Resolve(ctx context.Context, address string) (auth.Resolution, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.resolveErr != nil {
		return auth.Resolution{}, d.resolveErr
	}
	address = strings.ToLower(address)
	at := strings.LastIndexByte(address, '@')
	if !d.domains[address[at+1:]] {
		return auth.Resolution{}, auth.ErrNotLocal
	}
	if r, ok := d.aliases[address]; ok {
		return r, nil
	}
	local := address[:at]
	if i := strings.IndexByte(local, '+'); i > 0 {
		address = local[:i] + address[at:]
	}
	if _, ok := d.passwords[address]; ok {
		return auth.Resolution{Local: []string{address}}, nil
	}
	return auth.Resolution{}, auth.ErrNoSuchUser
}

func (d *fakeDirectory) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.domains[strings.ToLower(domain)], nil
}

func (d *fakeDirectory) CanSendAs(ctx context.Context, user, from string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	from = strings.ToLower(from)
	if from == user {
		return true, nil
	}
	for _, a := range d.sendAs[user] {
		if a == from {
			return true, nil
		}
	}
	return false, nil
}

func (d *fakeDirectory) Mechanisms() []string { return []string{"PLAIN", "LOGIN"} }

func (d *fakeDirectory) NewSASLServer(ctx context.Context, mech string, remote netip.Addr, done func(auth.User)) (sasl.Server, error) {
	check := func(username, password string) error {
		if d.authErr != nil {
			return d.authErr
		}
		d.mu.Lock()
		want, ok := d.passwords[username]
		d.mu.Unlock()
		if !ok || want != password {
			return fmt.Errorf("%w: for %s", auth.ErrBadCredentials, username)
		}
		done(auth.User{Address: username})
		return nil
	}
	switch mech {
	case "PLAIN":
		return sasl.NewPlainServer(func(identity, username, password string) error { return check(username, password) }), nil
	case "LOGIN":
		return &fakeLogin{check: check}, nil
	}
	return nil, errors.New("unsupported mechanism")
}

// fakeLogin is a minimal LOGIN server (go-sasl only has the client).
type fakeLogin struct {
	check func(u, p string) error
	step  int
	user  string
}

func (l *fakeLogin) Next(resp []byte) ([]byte, bool, error) {
	switch {
	case l.step == 0 && len(resp) == 0:
		l.step = 1
		return []byte("Username:"), false, nil
	case l.step <= 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.user, string(resp))
	}
}

// fakeQueue records queue entries.
type fakeQueue struct {
	mu      sync.Mutex
	entries []queued
	bounces []bounced
	err     error
}

// bounced is a Bounce call: the sender and, per refused account, its
// reply code.
type bounced struct {
	from    string
	refused map[string]int
}

type queued struct {
	from  string
	rcpts []string
	body  []byte
}

func (q *fakeQueue) Enqueue(ctx context.Context, from string, rcpts []string, body io.Reader) (string, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return "", q.err
	}
	q.entries = append(q.entries, queued{from: from, rcpts: append([]string(nil), rcpts...), body: b})
	return fmt.Sprintf("q%d", len(q.entries)), nil
}

func (q *fakeQueue) Bounce(ctx context.Context, from, id string, body io.Reader, refused []delivery.Result) error {
	if _, err := io.ReadAll(body); err != nil {
		return err
	}
	b := bounced{from: from, refused: map[string]int{}}
	for _, r := range refused {
		code, _ := toSMTPError(r.Err)
		b.refused[r.Rcpt] = code.Code
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bounces = append(q.bounces, b)
	return nil
}

func (q *fakeQueue) bounced() []bounced {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]bounced(nil), q.bounces...)
}

func (q *fakeQueue) all() []queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queued(nil), q.entries...)
}

// testServer is a running server with its fakes.
type testServer struct {
	t        testing.TB
	srv      *Server
	addr     string
	dir      *fakeDirectory
	mail     *maildir.Store // the real store behind Options.Store and the pipeline
	queue    *fakeQueue
	logs     *logbuf.Buffer
	spoolDir string
	opts     Options

	quotaMu sync.Mutex
	quota   map[string]int64 // account → quota in bytes; none: unlimited
}

// newTestServer starts a server on 127.0.0.1:0 (ModeMTA unless an option
// says otherwise) with a fake directory, a recording queue and a real
// maildir store in a temp dir, whose quotas the test sets (setQuota), and
// the real delivery pipeline over it unless an option sets Delivery.
func newTestServer(t testing.TB, opts ...func(*Options)) *testServer {
	t.Helper()
	ts := &testServer{t: t, dir: newFakeDirectory(), queue: &fakeQueue{}, logs: &logbuf.Buffer{}, spoolDir: t.TempDir(), quota: map[string]int64{}}
	mail, err := maildir.Open(context.Background(), t.TempDir(), maildir.Options{Quota: ts.quotaOf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mail.Close() })
	ts.mail = mail
	o := Options{
		Logger:    slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hostname:  "mx.example.org",
		Mode:      ModeMTA,
		TLS:       certstest.Default().ServerConfig("mx.example.org", "localhost", "127.0.0.1"),
		Directory: ts.dir,
		Store:     MailStore(mail),
		Queue:     ts.queue,
		SpoolDir:  ts.spoolDir,
		Now:       func() time.Time { return time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC) },
	}
	for _, f := range opts {
		f(&o)
	}
	switch d := o.Delivery.(type) {
	case nil:
		o.Delivery = newTestDelivery(t, o, mail)
	case testFilters:
		o.Delivery = newTestDelivery(t, o, mail, d...)
	}
	ts.opts = o
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
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve: %v, want ErrServerClosed", err)
		}
		if n := srv.life.Len(); n != 0 || srv.inflightCount() != 0 {
			t.Errorf("after Shutdown: %d connections, %d messages in flight", n, srv.inflightCount())
		}
	})
	return ts
}

func withMode(m Mode) func(*Options) { return func(o *Options) { o.Mode = m } }

// clientTLS trusts the test server's certificate.
func clientTLS() *tls.Config {
	return certstest.Default().ClientConfig("mx.example.org")
}

func (ts *testServer) quotaOf(_ context.Context, account string) (int64, error) {
	ts.quotaMu.Lock()
	defer ts.quotaMu.Unlock()
	return ts.quota[account], nil
}

// setQuota sets account's quota in bytes (0: unlimited), from the next
// store call on.
func (ts *testServer) setQuota(account string, bytes int64) {
	ts.quotaMu.Lock()
	defer ts.quotaMu.Unlock()
	ts.quota[account] = bytes
}

// store puts msg into account's INBOX, as if delivered earlier.
func (ts *testServer) store(account, msg string) {
	t := ts.t
	t.Helper()
	ctx := context.Background()
	a, err := ts.mail.Open(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Deliver(ctx, strings.NewReader(msg), mailstore.DeliverOptions{}); err != nil {
		t.Fatal(err)
	}
}

// messages returns account's INBOX messages in delivery order.
func (ts *testServer) messages(account string) [][]byte {
	ts.t.Helper()
	ctx := context.Background()
	a, err := ts.mail.Open(ctx, account)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer a.Close()
	mb, err := a.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		ts.t.Fatal(err)
	}
	snap, err := a.Snapshot(ctx, mb.ID)
	if err != nil {
		ts.t.Fatal(err)
	}
	var out [][]byte
	for _, m := range snap.Messages {
		r, _, err := a.OpenMessage(ctx, mb.ID, m.UID)
		if err != nil {
			ts.t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			ts.t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// total counts the messages of every account the directory knows.
func (ts *testServer) total() int {
	ts.dir.mu.Lock()
	var accounts []string
	for a := range ts.dir.passwords {
		accounts = append(accounts, a)
	}
	ts.dir.mu.Unlock()
	n := 0
	for _, a := range accounts {
		n += len(ts.messages(a))
	}
	return n
}

// scriptedDelivery stands in for the pipeline where a test decides what
// becomes of each account (a store failure, say): it reads the message,
// stores nothing and answers Results. It records each call's recipients.
type scriptedDelivery struct {
	results []delivery.Result
	mu      sync.Mutex
	calls   [][]string
}

func (d *scriptedDelivery) Deliver(_ context.Context, m *delivery.Request) delivery.Outcome {
	if _, err := io.Copy(io.Discard, io.NewSectionReader(m.Body, 0, m.Body.Size())); err != nil {
		panic(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, append([]string(nil), m.Rcpts...))
	return delivery.Outcome{Results: append([]delivery.Result(nil), d.results...)}
}

func (d *scriptedDelivery) rcpts() [][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]string(nil), d.calls...)
}

// withDelivery replaces the pipeline by d.
func withDelivery(d Delivery) func(*Options) { return func(o *Options) { o.Delivery = d } }
