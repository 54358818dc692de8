package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/internal/readerat"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
	"github.com/posthouse/posthouse/mailstore/storetest"
)

// fakeDirectory resolves from a table; addresses not in it are unknown.
type fakeDirectory struct {
	routes map[string]auth.Resolution
	err    error // returned for every address when set
}

func (d *fakeDirectory) Resolve(_ context.Context, addr string) (auth.Resolution, error) {
	if d.err != nil {
		return auth.Resolution{}, d.err
	}
	r, ok := d.routes[strings.ToLower(addr)]
	if !ok {
		return auth.Resolution{}, fmt.Errorf("%w: %s", auth.ErrNoSuchUser, addr)
	}
	return r, nil
}

// recordingQueue records redirected copies.
type recordingQueue struct {
	mu      sync.Mutex
	entries []queued
	err     error
}

type queued struct {
	from  string
	rcpts []string
	body  string
}

func (q *recordingQueue) Enqueue(_ context.Context, from string, rcpts []string, body io.Reader) (string, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return "", q.err
	}
	q.entries = append(q.entries, queued{from: from, rcpts: append([]string(nil), rcpts...), body: string(b)})
	return fmt.Sprintf("q%d", len(q.entries)), nil
}

func (q *recordingQueue) all() []queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queued(nil), q.entries...)
}

// funcFilter is a test filter; calls counts its Check calls.
type funcFilter struct {
	name  string
	fn    func(ctx context.Context, m *Message) (Decision, error)
	calls atomic.Int32
}

func (f *funcFilter) Name() string { return f.name }
func (f *funcFilter) Check(ctx context.Context, m *Message) (Decision, error) {
	f.calls.Add(1)
	return f.fn(ctx, m)
}

// verdictFilter answers v for every recipient.
func verdictFilter(name string, v Verdict) *funcFilter {
	return &funcFilter{name: name, fn: func(context.Context, *Message) (Decision, error) { return Decision{All: v}, nil }}
}

// rcptFilter answers per account.
func rcptFilter(name string, all Verdict, per map[string]Verdict) *funcFilter {
	return &funcFilter{name: name, fn: func(context.Context, *Message) (Decision, error) { return Decision{All: all, Rcpt: per}, nil }}
}

// testEnv is a pipeline over a real maildir store in a temp dir.
type testEnv struct {
	t     testing.TB
	store mailstore.Store
	dir   *fakeDirectory
	queue *recordingQueue
	quota map[string]*atomic.Int64
	logs  *bytes.Buffer
	logMu *sync.Mutex
}

const (
	alice = "alice@a.test"
	bob   = "bob@a.test"
	carol = "carol@a.test"
)

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	e := &testEnv{
		t:     t,
		queue: &recordingQueue{},
		quota: map[string]*atomic.Int64{alice: {}, bob: {}, carol: {}},
		logs:  &bytes.Buffer{},
		logMu: &sync.Mutex{},
		dir: &fakeDirectory{routes: map[string]auth.Resolution{
			alice:              {Local: []string{alice}},
			"alice+tag@a.test": {Local: []string{alice}},
			bob:                {Local: []string{bob}},
			carol:              {Local: []string{carol}},
			"team@a.test":      {Local: []string{alice, bob}},
			"fwd@a.test":       {Local: []string{bob}, Remote: []string{"bob@b.test", "x@c.test"}},
			"out@a.test":       {Remote: []string{"x@c.test"}},
			"nobody@a.test":    {},
		}},
	}
	st, err := maildir.Open(context.Background(), t.TempDir(), maildir.Options{
		Quota: func(_ context.Context, name string) (int64, error) {
			if q, ok := e.quota[name]; ok {
				return q.Load(), nil
			}
			return 0, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st
	return e
}

// pipeline builds a pipeline over the env with filters.
func (e *testEnv) pipeline(filters ...Filter) *Pipeline {
	e.t.Helper()
	p, err := New(Options{
		Logger:    slog.New(slog.NewTextHandler(lockedWriter{e.logMu, e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Directory: e.dir,
		Store:     MailStore(e.store),
		Queue:     e.queue,
		Filters:   filters,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *testEnv) log() string {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return e.logs.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

const testMsg = "From: sender@remote.test\r\nTo: alice@a.test\r\nSubject: hello\r\nMessage-ID: <1@remote.test>\r\n\r\nHello.\r\n"

// request is a message from sender@remote.test as smtpd would hand it
// over: a trace prefix and a spooled body.
func request(msg string, rcpts ...string) *Request {
	return &Request{
		Envelope: Envelope{Source: SourceSMTP, ID: "t.1", From: "sender@remote.test"},
		Rcpts:    rcpts,
		Body:     readerat.Concat(readerat.String("Received: from client.test\r\n"), readerat.String(msg)),
	}
}

// mail returns every message of the account.
func (e *testEnv) mail(account string) []storetest.Stored {
	e.t.Helper()
	return storetest.Messages(e.t, e.store, account)
}

// errOf returns the Result error for rcpt, failing the test if absent.
func errOf(t testing.TB, out Outcome, rcpt string) error {
	t.Helper()
	for _, r := range out.Results {
		if r.Rcpt == rcpt {
			return r.Err
		}
	}
	t.Fatalf("no result for %s in %+v", rcpt, out.Results)
	return nil
}

func isReject(err error, code int) bool {
	var re *RejectError
	return errors.As(err, &re) && re.Reply.Code == code
}
