package sievefilter

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/internal/readerat"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
	"github.com/posthouse/posthouse/mailstore/storetest"
	"github.com/posthouse/posthouse/sievestore"
)

const (
	alice = "alice@a.test"
	bob   = "bob@a.test"
)

// directory resolves alice, bob, and alias@a.test to alice.
type directory struct{}

func (directory) Resolve(_ context.Context, addr string) (auth.Resolution, error) {
	switch strings.ToLower(addr) {
	case alice, "alias@a.test", "alice+tag@a.test":
		return auth.Resolution{Local: []string{alice}}, nil
	case bob:
		return auth.Resolution{Local: []string{bob}}, nil
	}
	return auth.Resolution{}, auth.ErrNoSuchUser
}

// recordingQueue records what is enqueued.
type recordingQueue struct {
	mu      sync.Mutex
	entries []queued
	fail    error
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
	if q.fail != nil {
		return "", q.fail
	}
	q.entries = append(q.entries, queued{from, append([]string(nil), rcpts...), string(b)})
	return fmt.Sprintf("q%d", len(q.entries)), nil
}

func (q *recordingQueue) take() []queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.entries
	q.entries = nil
	return e
}

// clock is a movable clock shared by the filter and the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a pipeline over a maildir store with a filter before ours
// (before, optional) and ours.
type env struct {
	t      testing.TB
	mail   mailstore.Store
	sieve  *sievestore.Store
	path   string // of sieve.sqlite
	queue  *recordingQueue
	clock  *clock
	filter *Filter
	before delivery.Filter
	quota  atomic.Int64 // alice's
	logs   *syncBuffer
}

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

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, queue: &recordingQueue{}, clock: &clock{t: time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}}
	st, err := maildir.Open(ctx, t.TempDir(), maildir.Options{Quota: func(_ context.Context, name string) (int64, error) {
		if name == alice {
			return e.quota.Load(), nil
		}
		return 0, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.mail = st
	e.path = filepath.Join(t.TempDir(), "sieve.sqlite")
	e.sieve, err = sievestore.Open(ctx, e.path, sievestore.Options{Now: e.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.sieve.Close() })
	e.filter, err = New(Options{Store: e.sieve, Queue: e.queue, Mailboxes: MailStore(st), Hostname: "mx.a.test", Now: e.clock.now,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// script stores and activates src for account.
func (e *env) script(account, src string) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.sieve.Put(ctx, account, "main", []byte(src)); err != nil {
		e.t.Fatal(err)
	}
	if err := e.sieve.SetActive(ctx, account, "main"); err != nil {
		e.t.Fatal(err)
	}
}

// deliver runs the pipeline for msg from sender to rcpts.
func (e *env) deliver(sender, msg string, rcpts ...string) delivery.Outcome {
	e.t.Helper()
	filters := []delivery.Filter{e.filter}
	if e.before != nil {
		filters = append([]delivery.Filter{e.before}, filters...)
	}
	p, err := delivery.New(delivery.Options{Directory: directory{}, Store: delivery.MailStore(e.mail), Queue: e.queue, Filters: filters})
	if err != nil {
		e.t.Fatal(err)
	}
	return p.Deliver(context.Background(), &delivery.Request{
		Envelope: delivery.Envelope{Source: delivery.SourceSMTP, ID: "t1", From: sender},
		Rcpts:    rcpts,
		Body:     readerat.String(msg),
	})
}

func (e *env) stored(account string) []storetest.Stored {
	e.t.Helper()
	return storetest.Messages(e.t, e.mail, account)
}

// where lists the mailboxes of the account's messages, in store order.
func (e *env) where(account string) []string {
	var out []string
	for _, m := range e.stored(account) {
		out = append(out, m.Mailbox)
	}
	return out
}

func errFor(t testing.TB, out delivery.Outcome, rcpt string) error {
	t.Helper()
	for _, r := range out.Results {
		if r.Rcpt == rcpt {
			return r.Err
		}
	}
	t.Fatalf("no result for %s", rcpt)
	return nil
}

// mailFrom builds a message from sender to alice with extra fields.
func mailFrom(sender, subject string, extra ...string) string {
	h := "From: " + sender + "\r\nTo: Alice <alice@a.test>\r\nSubject: " + subject + "\r\nMessage-ID: <m1@remote.test>\r\n"
	for _, x := range extra {
		h += x + "\r\n"
	}
	return h + "\r\nHello Alice.\r\n"
}
