package queue

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

// withFilters runs the local transport's pipeline with filters.
func withFilters(fs ...delivery.Filter) func(*Options) {
	return func(o *Options) { o.Local = localMarker{filters: fs} }
}

// localMarker stands in Options.Local until env.open builds the pipeline
// over its store and the final Options.Locals.
type localMarker struct {
	filters []delivery.Filter
}

func (localMarker) Deliver(context.Context, *delivery.Request) delivery.Outcome {
	panic("localMarker: env.open builds the pipeline")
}

// newTestLocal is the real delivery pipeline as the queue's LocalDelivery,
// as cmd/posthouse wires it, with fakeLocals for the directory.
func newTestLocal(t testing.TB, o Options, store *maildir.Store, filters ...delivery.Filter) LocalDelivery {
	t.Helper()
	var dir delivery.Directory = localsDirectory{}
	if l, ok := o.Locals.(fakeLocals); ok {
		dir = localsDirectory{l}
	}
	p, err := delivery.New(delivery.Options{Logger: o.Logger, Directory: dir, Store: delivery.MailStore(store), Filters: filters})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// localsDirectory resolves with fakeLocals' users.
type localsDirectory struct{ l fakeLocals }

func (d localsDirectory) Resolve(ctx context.Context, addr string) (auth.Resolution, error) {
	local, remote, err := d.l.Resolve(ctx, addr)
	return auth.Resolution{Local: local, Remote: remote}, err
}

// filterFunc is a delivery filter for the queue's tests.
type filterFunc func(ctx context.Context, m *delivery.Message) (delivery.Decision, error)

func (f filterFunc) Name() string { return "test" }
func (f filterFunc) Check(ctx context.Context, m *delivery.Message) (delivery.Decision, error) {
	return f(ctx, m)
}

// TestLocalFilterVerdicts: the local transport runs the pipeline's filters
// like smtpd does: a 5xx reject fails the recipient and the sender gets a
// DSN with the filter's status; a temporary reject or a filter error is
// retried; the filter sees a queued message without a connection.
func TestLocalFilterVerdicts(t *testing.T) {
	var sources []delivery.Source
	var mu sync.Mutex
	failing := atomic.Bool{}
	failing.Store(true)
	f := filterFunc(func(_ context.Context, m *delivery.Message) (delivery.Decision, error) {
		mu.Lock()
		sources = append(sources, m.Envelope.Source)
		mu.Unlock()
		if m.Envelope.Client != (delivery.Client{}) {
			return delivery.Decision{}, errors.New("a queued message has no client")
		}
		d := delivery.Decision{Rcpt: map[string]delivery.Verdict{}}
		for _, r := range m.Recipients {
			switch r.Account {
			case "carol@a.test":
				d.Rcpt[r.Account] = delivery.Verdict{Action: delivery.Reject, Reply: delivery.Reply{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: "Not wanted here"}}
			case "dave@a.test":
				if failing.Load() {
					return delivery.Decision{}, errors.New("rules unavailable")
				}
			}
		}
		return d, nil
	})
	e := newEnv(t, newFakeRemote(t), withFilters(f), func(o *Options) {
		o.Locals = fakeLocals{users: map[string]bool{"alice@a.test": true, "carol@a.test": true, "dave@a.test": true}}
	})
	id := e.enqueue("alice@a.test", "carol@a.test", "dave@a.test")
	waitFor(t, "carol to fail and dave to be deferred", func() bool {
		cs, _ := e.rcptState(id, "carol@a.test")
		ds, dr := e.rcptState(id, "dave@a.test")
		return cs == StateFailed && ds == StatePending && strings.Contains(dr, "4.3.0")
	})
	waitFor(t, "the DSN for carol", func() bool { return len(e.inbox("alice@a.test")) == 1 })
	dsn := string(e.inbox("alice@a.test")[0])
	for _, want := range []string{"Return-Path: <>\r\n", "Final-Recipient: rfc822; carol@a.test", "Status: 5.7.1", "Not wanted here"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q", want)
		}
	}
	failing.Store(false)
	e.advance(time.Hour)
	waitFor(t, "dave's copy", func() bool { return len(e.inbox("dave@a.test")) == 1 })
	if got := e.inbox("dave@a.test")[0]; !strings.HasPrefix(string(got), "Return-Path: <alice@a.test>\r\n") {
		t.Errorf("dave's copy: %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range sources {
		if s != delivery.SourceQueue {
			t.Errorf("filter saw source %q", s)
		}
	}
}
