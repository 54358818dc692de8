package smtpd

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/mailstore"
)

// newTestDelivery is the real delivery pipeline behind smtpd's Delivery
// interface, over the test server's directory, maildir store and queue:
// smtpd's tests check what a client sees and what lands in the store, as
// cmd/posthouse wires it.
func newTestDelivery(t testing.TB, o Options, store mailstore.Store, filters ...delivery.Filter) Delivery {
	t.Helper()
	dopts := delivery.Options{Logger: o.Logger, Directory: o.Directory, Store: delivery.MailStore(store), Filters: filters}
	if o.Queue != nil {
		dopts.Queue = o.Queue
	}
	p, err := delivery.New(dopts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// filterFunc is a delivery filter for smtpd's tests.
type filterFunc func(ctx context.Context, m *delivery.Message) (delivery.Decision, error)

func (f filterFunc) Name() string { return "test" }
func (f filterFunc) Check(ctx context.Context, m *delivery.Message) (delivery.Decision, error) {
	return f(ctx, m)
}

// withFilters runs the delivery pipeline with filters, over the store
// newTestServer chooses.
func withFilters(fs ...delivery.Filter) func(*Options) {
	return func(o *Options) { o.Delivery = testFilters(fs) }
}

// testFilters stands in Options.Delivery until newTestServer builds the
// pipeline with them.
type testFilters []delivery.Filter

func (testFilters) Deliver(context.Context, *delivery.Request) delivery.Outcome {
	panic("testFilters: newTestServer builds the pipeline")
}

// TestDeliveryFilters: what filters decide reaches the client as the one
// DATA reply, by the partial-failure rules of the package doc.
func TestDeliveryFilters(t *testing.T) {
	spam := delivery.Reply{Code: 554, Enhanced: [3]int{5, 7, 1}, Text: "Message looks like spam"}
	tests := []struct {
		name    string
		filter  filterFunc
		rcpt    string
		reply   string
		alice   int // messages in alice's INBOX
		queued  []string
		bounced map[string]int // refused account → reply code in the DSN
	}{
		{
			name: "rejected for everyone: the filter's reply",
			filter: func(context.Context, *delivery.Message) (delivery.Decision, error) {
				return delivery.Decision{All: delivery.Verdict{Action: delivery.Reject, Reply: spam}}, nil
			},
			rcpt:  "team@example.org",
			reply: "554 5.7.1 Message looks like spam",
		},
		{
			name: "rejected for one account: 250, a DSN for that one at once, no retry",
			filter: func(context.Context, *delivery.Message) (delivery.Decision, error) {
				return delivery.Decision{Rcpt: map[string]delivery.Verdict{"bob@example.org": {Action: delivery.Reject, Reply: spam}}}, nil
			},
			rcpt:    "team@example.org",
			reply:   "250 2.0.0 ",
			alice:   1,
			bounced: map[string]int{"bob@example.org": 554},
		},
		{
			name: "rejected for everyone, an alias's foreign target not queued either",
			filter: func(context.Context, *delivery.Message) (delivery.Decision, error) {
				return delivery.Decision{All: delivery.Verdict{Action: delivery.Reject, Reply: spam}}, nil
			},
			rcpt:  "fwd@example.org",
			reply: "554 5.7.1 Message looks like spam",
		},
		{
			name: "temporary reject: 4xx",
			filter: func(context.Context, *delivery.Message) (delivery.Decision, error) {
				return delivery.Decision{All: delivery.Verdict{Action: delivery.Reject, Reply: delivery.Reply{Code: 451, Enhanced: [3]int{4, 7, 1}, Text: "Greylisted"}}}, nil
			},
			rcpt:  "alice@example.org",
			reply: "451 4.7.1 Greylisted",
		},
		{
			name: "filter error: 451 4.3.0, nothing stored",
			filter: func(context.Context, *delivery.Message) (delivery.Decision, error) {
				return delivery.Decision{}, errors.New("rules unreadable")
			},
			rcpt:  "team@example.org",
			reply: "451 4.3.0 ",
		},
		{
			name:   "filter panic: 451 4.3.0, nothing stored, server lives",
			filter: func(context.Context, *delivery.Message) (delivery.Decision, error) { panic("bug") },
			rcpt:   "team@example.org",
			reply:  "451 4.3.0 ",
		},
		{
			name: "discard: 250, nothing stored",
			filter: func(context.Context, *delivery.Message) (delivery.Decision, error) {
				return delivery.Decision{All: delivery.Verdict{Action: delivery.Discard}}, nil
			},
			rcpt:  "alice@example.org",
			reply: "250 2.0.0 ",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, withFilters(tc.filter))
			c := dialRaw(t, ts.addr)
			c.ehlo()
			c.cmd("MAIL FROM:<x@remote.test>", "250 ")
			c.cmd("RCPT TO:<"+tc.rcpt+">", "250 ")
			c.cmd("DATA", "354 ")
			c.write("Subject: f\r\n\r\nx\r\n.\r\n")
			if line := c.expect(tc.reply); strings.Contains(line, "rules") || strings.Contains(line, "bug") {
				t.Errorf("internal error on the wire: %q", line)
			}
			c.cmd("NOOP", "250 ")
			if n := len(ts.messages("alice@example.org")); n != tc.alice {
				t.Errorf("alice has %d messages, want %d", n, tc.alice)
			}
			var queued []string
			for _, q := range ts.queue.all() {
				queued = append(queued, q.rcpts...)
			}
			if !slices.Equal(queued, tc.queued) {
				t.Errorf("queued %q, want %q", queued, tc.queued)
			}
			var bounced map[string]int
			if b := ts.queue.bounced(); len(b) == 1 && b[0].from == "x@remote.test" {
				bounced = b[0].refused
			} else if len(b) > 0 {
				t.Errorf("bounces %+v", b)
			}
			if !maps.Equal(bounced, tc.bounced) {
				t.Errorf("bounced %v, want %v", bounced, tc.bounced)
			}
		})
	}
}

// TestDeliveryFilterSeesConnection: filters get the connection's facts and
// the message with our trace fields; the fields they add come after
// Return-Path, before our Received.
func TestDeliveryFilterSeesConnection(t *testing.T) {
	var env delivery.Envelope
	var received string
	f := filterFunc(func(_ context.Context, m *delivery.Message) (delivery.Decision, error) {
		env, received = m.Envelope, m.Header().Get("Received")
		return delivery.Decision{All: delivery.Verdict{Headers: []delivery.Field{{Name: "X-Spam-Status", Value: "No"}}}}, nil
	})
	ts := newTestServer(t, withFilters(f))
	c := dialRaw(t, ts.addr)
	c.ehlo()
	c.cmd("MAIL FROM:<x@remote.test>", "250 ")
	c.cmd("RCPT TO:<alice@example.org>", "250 ")
	c.cmd("DATA", "354 ")
	c.write("Subject: f\r\n\r\nx\r\n.\r\n")
	c.expect("250 2.0.0 ")
	if env.Source != delivery.SourceSMTP || env.From != "x@remote.test" || env.Client.IP.String() != "127.0.0.1" ||
		env.Client.Helo == "" || env.Client.TLSVersion != 0 || env.Client.User != "" || env.ID == "" {
		t.Errorf("envelope %+v", env)
	}
	if !strings.Contains(received, "by mx.example.org (Posthouse) with ESMTP id "+env.ID) {
		t.Errorf("Received %q lacks id %s", received, env.ID)
	}
	m := ts.messages("alice@example.org")
	if len(m) != 1 || !strings.HasPrefix(string(m[0]), "Return-Path: <x@remote.test>\r\nX-Spam-Status: No\r\nReceived: from ") {
		t.Fatalf("stored %q", m)
	}
}

// TestAliasChangedBeforeData: the pipeline decides where a message goes at
// delivery time; an alias that became foreign-only between RCPT and the
// end of DATA is queued, not lost.
func TestAliasChangedBeforeData(t *testing.T) {
	ts := newTestServer(t)
	c := dialRaw(t, ts.addr)
	c.ehlo()
	c.cmd("MAIL FROM:<x@remote.test>", "250 ")
	c.cmd("RCPT TO:<team@example.org>", "250 ")
	ts.dir.mu.Lock()
	ts.dir.aliases["team@example.org"] = auth.Resolution{Remote: []string{"team@elsewhere.test"}}
	ts.dir.mu.Unlock()
	c.cmd("DATA", "354 ")
	c.write("Subject: moved\r\n\r\nx\r\n.\r\n")
	c.expect("250 2.0.0 ")
	q := ts.queue.all()
	if len(q) != 1 || !slices.Equal(q[0].rcpts, []string{"team@elsewhere.test"}) {
		t.Fatalf("queued %+v", q)
	}
	if n := len(ts.messages("alice@example.org")); n != 0 {
		t.Errorf("alice has %d messages", n)
	}
}

// slowFilter passes every message after d, or fails when ctx ends first:
// a slow step of the pipeline (a content scanner), before the store.
func slowFilter(d time.Duration) delivery.Filter {
	return filterFunc(func(ctx context.Context, _ *delivery.Message) (delivery.Decision, error) {
		select {
		case <-time.After(d):
			return delivery.Decision{}, nil
		case <-ctx.Done():
			return delivery.Decision{}, ctx.Err()
		}
	})
}
