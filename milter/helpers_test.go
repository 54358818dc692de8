package milter

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/internal/logbuf"
	"github.com/posthouse/posthouse/internal/readerat"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
	"github.com/posthouse/posthouse/mailstore/storetest"
)

// directory resolves a fixed table of test addresses.
type directory map[string]auth.Resolution

func (d directory) Resolve(_ context.Context, addr string) (auth.Resolution, error) {
	r, ok := d[strings.ToLower(addr)]
	if !ok {
		return auth.Resolution{}, fmt.Errorf("%w: %s", auth.ErrNoSuchUser, addr)
	}
	return r, nil
}

const (
	alice = "alice@a.test"
	bob   = "bob@a.test"
)

// env is the real delivery pipeline over a maildir store in a temp dir,
// with milter filters in front.
type env struct {
	t     testing.TB
	store mailstore.Store
	logs  *logbuf.Buffer
	log   *slog.Logger
}

func newEnv(t testing.TB) *env {
	t.Helper()
	st, err := maildir.Open(context.Background(), t.TempDir(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &logbuf.Buffer{}
	return &env{t: t, store: st, logs: logs, log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

// filter builds a milter filter logging into the env.
func (e *env) filter(opts Options) *Filter {
	e.t.Helper()
	if opts.Logger == nil {
		opts.Logger = e.log
	}
	if opts.Hostname == "" {
		opts.Hostname = "mx.a.test"
	}
	f, err := New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

// deliver runs msg through a pipeline with filters, as smtpd hands a
// port-25 message over: a Received field in front of the spooled body.
func (e *env) deliver(filters []delivery.Filter, envl delivery.Envelope, msg string, rcpts ...string) delivery.Outcome {
	e.t.Helper()
	p, err := delivery.New(delivery.Options{
		Logger: e.log,
		Directory: directory{
			alice:         {Local: []string{alice}},
			bob:           {Local: []string{bob}},
			"team@a.test": {Local: []string{alice, bob}},
		},
		Store:   delivery.MailStore(e.store),
		Filters: filters,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return p.Deliver(context.Background(), &delivery.Request{
		Envelope: envl,
		Rcpts:    rcpts,
		Body:     readerat.Concat(readerat.String("Received: from client.remote.test ([192.0.2.10])\r\n\tby mx.a.test; Thu, 3 Dec 2026 20:00:00 +0000\r\n"), readerat.String(msg)),
	})
}

// inbound is a port-25 envelope from a remote client.
func inbound() delivery.Envelope {
	return delivery.Envelope{
		Source: delivery.SourceSMTP,
		ID:     "Q1234",
		From:   "sender@remote.test",
		Client: delivery.Client{IP: netip.MustParseAddr("192.0.2.10"), Helo: "client.remote.test"},
	}
}

// mail returns every message of the account.
func (e *env) mail(account string) []storetest.Stored {
	e.t.Helper()
	return storetest.Messages(e.t, e.store, account)
}

// resultErr returns the error of the result for rcpt.
func resultErr(t testing.TB, out delivery.Outcome, rcpt string) error {
	t.Helper()
	for _, r := range out.Results {
		if r.Rcpt == rcpt {
			return r.Err
		}
	}
	t.Fatalf("no result for %s in %+v", rcpt, out.Results)
	return nil
}

// rejected returns the reply of a rejected result, failing the test if
// the result is not a rejection.
func rejected(t testing.TB, out delivery.Outcome, rcpt string) delivery.Reply {
	t.Helper()
	err := resultErr(t, out, rcpt)
	re, ok := err.(*delivery.RejectError)
	if !ok {
		t.Fatalf("result for %s: %v, want a rejection", rcpt, err)
	}
	return re.Reply
}

// fakeMilter is a milter server (go-milter's server side) whose answers
// the test scripts. It records what it was told.
type fakeMilter struct {
	mu   sync.Mutex
	seen recording

	// Answers; nil means continue (accept at the end of the message).
	connect func() (gomilter.Response, error)
	mail    func(from string) (gomilter.Response, error)
	rcpt    func(to string) (gomilter.Response, error)
	header  func(name, value string) (gomilter.Response, error)
	body    func(m *gomilter.Modifier) (gomilter.Response, error)
}

// recording is what the milter saw of one conversation.
type recording struct {
	host, family, addr string
	helo, from         string
	rcpts              []string
	fields             [][2]string
	body               []byte
	macros             map[string]string // all stages merged
	aborted            bool
	ended              bool
}

func (f *fakeMilter) record(fn func(r *recording), m *gomilter.Modifier) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen.macros == nil {
		f.seen.macros = map[string]string{}
	}
	for k, v := range m.Macros {
		f.seen.macros[k] = v
	}
	fn(&f.seen)
}

func (f *fakeMilter) got() recording {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.seen
	r.macros = maps.Clone(r.macros)
	r.rcpts = slices.Clone(r.rcpts)
	r.fields = slices.Clone(r.fields)
	r.body = slices.Clone(r.body)
	return r
}

// start serves the fake on a loopback port and returns its address as
// the milter option wants it.
func (f *fakeMilter) start(t testing.TB, actions gomilter.OptAction, protocol gomilter.OptProtocol) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &gomilter.Server{
		NewMilter: func() gomilter.Milter { return &fakeSession{f: f} },
		Actions:   actions,
		Protocol:  protocol,
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	// Closing the listener ends Serve; go-milter's Server.Close races
	// with a running Serve.
	t.Cleanup(func() { ln.Close(); <-done })
	return "inet:" + ln.Addr().String()
}

// fakeSession is one conversation's gomilter.Milter.
type fakeSession struct{ f *fakeMilter }

func orContinue(fn func() (gomilter.Response, error)) (gomilter.Response, error) {
	if fn == nil {
		return gomilter.RespContinue, nil
	}
	return fn()
}

func (s *fakeSession) Connect(host, family string, _ uint16, addr net.IP, m *gomilter.Modifier) (gomilter.Response, error) {
	s.f.record(func(r *recording) { r.host, r.family, r.addr = host, family, addr.String() }, m)
	return orContinue(s.f.connect)
}

func (s *fakeSession) Helo(name string, m *gomilter.Modifier) (gomilter.Response, error) {
	s.f.record(func(r *recording) { r.helo = name }, m)
	return gomilter.RespContinue, nil
}

func (s *fakeSession) MailFrom(from string, m *gomilter.Modifier) (gomilter.Response, error) {
	s.f.record(func(r *recording) { r.from = from }, m)
	if s.f.mail != nil {
		return s.f.mail(from)
	}
	return gomilter.RespContinue, nil
}

func (s *fakeSession) RcptTo(to string, m *gomilter.Modifier) (gomilter.Response, error) {
	s.f.record(func(r *recording) { r.rcpts = append(r.rcpts, to) }, m)
	if s.f.rcpt != nil {
		return s.f.rcpt(to)
	}
	return gomilter.RespContinue, nil
}

func (s *fakeSession) Header(name, value string, m *gomilter.Modifier) (gomilter.Response, error) {
	s.f.record(func(r *recording) { r.fields = append(r.fields, [2]string{name, value}) }, m)
	if s.f.header != nil {
		return s.f.header(name, value)
	}
	return gomilter.RespContinue, nil
}

func (s *fakeSession) Headers(_ textproto.MIMEHeader, m *gomilter.Modifier) (gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (s *fakeSession) BodyChunk(chunk []byte, m *gomilter.Modifier) (gomilter.Response, error) {
	s.f.record(func(r *recording) { r.body = append(r.body, chunk...) }, m)
	return gomilter.RespContinue, nil
}

func (s *fakeSession) Body(m *gomilter.Modifier) (gomilter.Response, error) {
	s.f.record(func(r *recording) { r.ended = true }, m)
	if s.f.body != nil {
		return s.f.body(m)
	}
	return gomilter.RespAccept, nil
}

func (s *fakeSession) Abort(m *gomilter.Modifier) error {
	s.f.record(func(r *recording) { r.aborted = true }, m)
	return nil
}
