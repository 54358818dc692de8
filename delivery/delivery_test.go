package delivery

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/mailstore"
)

const wantPrefix = "Return-Path: <sender@remote.test>\r\nReceived: from client.test\r\n"

// TestResolve: aliases and sub-addresses reach accounts once each, foreign
// alias targets are reported (not sent), and recipients that no longer
// resolve fail alone.
func TestResolve(t *testing.T) {
	e := newTestEnv(t)
	p := e.pipeline()
	out := p.Deliver(context.Background(), request(testMsg, "team@a.test", "alice+tag@a.test", "fwd@a.test", "gone@a.test", "nobody@a.test"))

	var got []string
	for _, r := range out.Results {
		got = append(got, r.Rcpt+"="+strings.Join(r.Addresses, ","))
	}
	want := []string{
		alice + "=team@a.test,alice+tag@a.test",
		bob + "=team@a.test,fwd@a.test",
		"gone@a.test=gone@a.test",
		"nobody@a.test=nobody@a.test",
	}
	if !slices.Equal(got, want) {
		t.Errorf("results %q, want %q", got, want)
	}
	for _, rcpt := range []string{"gone@a.test", "nobody@a.test"} {
		if err := errOf(t, out, rcpt); !errors.Is(err, auth.ErrNoSuchUser) {
			t.Errorf("%s: %v, want auth.ErrNoSuchUser", rcpt, err)
		}
	}
	if !slices.Equal(out.Remote, []string{"bob@b.test", "x@c.test"}) {
		t.Errorf("remote %q", out.Remote)
	}
	for _, acct := range []string{alice, bob} {
		if err := errOf(t, out, acct); err != nil {
			t.Errorf("%s: %v", acct, err)
		}
		m := e.mail(acct)
		if len(m) != 1 || m[0].Mailbox != mailstore.Inbox || m[0].Body != wantPrefix+testMsg {
			t.Errorf("%s: %+v", acct, m)
		}
	}
	if len(e.queue.all()) != 0 {
		t.Error("the pipeline queued foreign alias targets itself")
	}
}

func TestResolveError(t *testing.T) {
	e := newTestEnv(t)
	e.dir.err = errors.New("database is locked")
	out := e.pipeline().Deliver(context.Background(), request(testMsg, alice))
	if err := errOf(t, out, alice); err == nil || errors.Is(err, auth.ErrNoSuchUser) {
		t.Fatalf("got %v, want a temporary error", err)
	}
}

// TestNullSender: a DSN's copy says Return-Path: <>.
func TestNullSender(t *testing.T) {
	e := newTestEnv(t)
	req := request(testMsg, alice)
	req.Envelope.From = ""
	if err := errOf(t, e.pipeline().Deliver(context.Background(), req), alice); err != nil {
		t.Fatal(err)
	}
	if m := e.mail(alice); len(m) != 1 || !strings.HasPrefix(m[0].Body, "Return-Path: <>\r\nReceived: ") {
		t.Fatalf("%+v", m)
	}
}

// TestVerdicts runs each kind of verdict alone.
func TestVerdicts(t *testing.T) {
	spam := []Field{{Name: "X-Spam-Status", Value: "Yes, score=9.1"}}
	tests := []struct {
		name    string
		filter  *funcFilter
		rcpts   []string
		reject  map[string]int      // account → reply code
		mailbox map[string]string   // account → where its one copy is; "" none
		flags   map[string][]string // account → flags of its copy
		header  string              // fields in front of wantPrefix's Received
		queued  []queued
	}{
		{
			name:    "keep",
			filter:  verdictFilter("keep", Verdict{}),
			rcpts:   []string{alice},
			mailbox: map[string]string{alice: "INBOX"},
		},
		{
			name:    "reject with the default reply",
			filter:  verdictFilter("reject", Verdict{Action: Reject}),
			rcpts:   []string{alice, bob},
			reject:  map[string]int{alice: 550, bob: 550},
			mailbox: map[string]string{alice: "", bob: ""},
		},
		{
			name:    "temporary reject",
			filter:  verdictFilter("grey", Verdict{Action: Reject, Reply: Reply{Code: 451, Enhanced: [3]int{4, 7, 1}, Text: "Greylisted, try again"}}),
			rcpts:   []string{alice},
			reject:  map[string]int{alice: 451},
			mailbox: map[string]string{alice: ""},
		},
		{
			name:    "discard",
			filter:  verdictFilter("discard", Verdict{Action: Discard}),
			rcpts:   []string{alice},
			mailbox: map[string]string{alice: ""},
		},
		{
			name:    "into Junk",
			filter:  verdictFilter("junk", Verdict{Mailbox: "Junk", Headers: spam}),
			rcpts:   []string{alice},
			mailbox: map[string]string{alice: "Junk"},
			header:  "X-Spam-Status: Yes, score=9.1\r\n",
		},
		{
			name:    "into a mailbox that does not exist: INBOX",
			filter:  verdictFilter("typo", Verdict{Mailbox: "Jnuk"}),
			rcpts:   []string{alice},
			mailbox: map[string]string{alice: "INBOX"},
		},
		{
			name:    "flags and keywords",
			filter:  verdictFilter("flags", Verdict{Flags: []string{`\Seen`, "$Junk"}}),
			rcpts:   []string{alice},
			mailbox: map[string]string{alice: "INBOX"},
			flags:   map[string][]string{alice: {`\Seen`, "$Junk"}},
		},
		{
			name: "folded field",
			filter: verdictFilter("authres", Verdict{Headers: []Field{{Name: "Authentication-Results",
				Value: "mx.a.test;\r\n\tdkim=pass header.d=remote.test"}}}),
			rcpts:   []string{alice},
			mailbox: map[string]string{alice: "INBOX"},
			header:  "Authentication-Results: mx.a.test;\r\n\tdkim=pass header.d=remote.test\r\n",
		},
		{
			name:    "redirect and keep",
			filter:  verdictFilter("fwd", Verdict{Redirect: []string{"x@c.test"}, Headers: spam}),
			rcpts:   []string{alice},
			mailbox: map[string]string{alice: "INBOX"},
			header:  "X-Spam-Status: Yes, score=9.1\r\n",
			queued: []queued{{from: "sender@remote.test", rcpts: []string{"x@c.test"},
				body: "X-Spam-Status: Yes, score=9.1\r\nReceived: from client.test\r\n" + testMsg}},
		},
		{
			name:    "redirect and discard: forward only",
			filter:  verdictFilter("fwd", Verdict{Action: Discard, Redirect: []string{"x@c.test"}}),
			rcpts:   []string{alice},
			mailbox: map[string]string{alice: ""},
			queued:  []queued{{from: "sender@remote.test", rcpts: []string{"x@c.test"}, body: "Received: from client.test\r\n" + testMsg}},
		},
		{
			name: "per recipient",
			filter: rcptFilter("sieve", Verdict{}, map[string]Verdict{
				bob:   {Action: Reject, Reply: Reply{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: "Not wanted"}},
				carol: {Mailbox: "Archive"},
			}),
			rcpts:   []string{alice, bob, carol},
			reject:  map[string]int{bob: 550},
			mailbox: map[string]string{alice: "INBOX", bob: "", carol: "Archive"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			out := e.pipeline(tc.filter).Deliver(context.Background(), request(testMsg, tc.rcpts...))
			if n := tc.filter.calls.Load(); n != 1 {
				t.Errorf("filter called %d times, want once per message", n)
			}
			for _, acct := range tc.rcpts {
				err := errOf(t, out, acct)
				if code, ok := tc.reject[acct]; ok {
					if !isReject(err, code) {
						t.Errorf("%s: %v, want a %d reject", acct, err, code)
					}
				} else if err != nil {
					t.Errorf("%s: %v", acct, err)
				}
				m := e.mail(acct)
				want := tc.mailbox[acct]
				if want == "" {
					if len(m) != 0 {
						t.Errorf("%s has %d messages, want none", acct, len(m))
					}
					continue
				}
				if len(m) != 1 || m[0].Mailbox != want {
					t.Fatalf("%s: %+v, want one copy in %s", acct, m, want)
				}
				if body := "Return-Path: <sender@remote.test>\r\n" + tc.header + "Received: from client.test\r\n" + testMsg; m[0].Body != body {
					t.Errorf("%s stored\n%q\nwant\n%q", acct, m[0].Body, body)
				}
				if !sameSet(m[0].Flags, tc.flags[acct]) {
					t.Errorf("%s flags %q, want %q", acct, m[0].Flags, tc.flags[acct])
				}
			}
			if q := e.queue.all(); !slices.EqualFunc(q, tc.queued, func(a, b queued) bool {
				return a.from == b.from && slices.Equal(a.rcpts, b.rcpts) && a.body == b.body
			}) {
				t.Errorf("queued %+v, want %+v", q, tc.queued)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestComposition: verdicts of several filters, in order.
func TestComposition(t *testing.T) {
	r451 := Reply{Code: 451, Enhanced: [3]int{4, 7, 1}, Text: "Later"}
	r554 := Reply{Code: 554, Enhanced: [3]int{5, 7, 1}, Text: "Spam"}
	tests := []struct {
		name     string
		verdicts []Verdict
		reject   int // reply code, 0: not rejected
		mailbox  string
		flags    []string
		header   string
		redirect []string
		ran      int // filters that ran
	}{
		{name: "reject wins over a later keep", verdicts: []Verdict{{Action: Reject, Reply: r554}, {Mailbox: "Junk"}}, reject: 554, ran: 1},
		{name: "the first reject's reply", verdicts: []Verdict{{}, {Action: Reject, Reply: r451}, {Action: Reject, Reply: r554}}, reject: 451, ran: 2},
		{name: "a reject after a discard", verdicts: []Verdict{{Action: Discard, Redirect: []string{"x@c.test"}}, {Action: Reject, Reply: r554}}, reject: 554, ran: 2},
		{name: "discard stays", verdicts: []Verdict{{Action: Discard}, {Mailbox: "Junk"}}, ran: 2},
		{name: "mailbox from the last that set it", verdicts: []Verdict{{Mailbox: "Junk"}, {}, {Mailbox: "Archive"}, {}}, mailbox: "Archive", ran: 4},
		{name: "flags from the last that set them", verdicts: []Verdict{{Flags: []string{`\Flagged`}}, {Flags: []string{"$Junk"}}, {}}, mailbox: "INBOX", flags: []string{"$Junk"}, ran: 3},
		{name: "empty flags clear them", verdicts: []Verdict{{Flags: []string{`\Flagged`}}, {Flags: []string{}}}, mailbox: "INBOX", ran: 2},
		{
			name: "headers add up, later filters on top",
			verdicts: []Verdict{
				{Headers: []Field{{Name: "Authentication-Results", Value: "mx; dkim=pass"}, {Name: "X-First", Value: "2"}}},
				{Headers: []Field{{Name: "X-Spam-Status", Value: "No"}}},
			},
			mailbox: "INBOX",
			header:  "X-Spam-Status: No\r\nAuthentication-Results: mx; dkim=pass\r\nX-First: 2\r\n",
			ran:     2,
		},
		{
			name:     "redirects add up, deduplicated, with keep",
			verdicts: []Verdict{{Redirect: []string{"x@c.test"}}, {Redirect: []string{"y@c.test", "x@c.test"}}},
			mailbox:  "INBOX",
			redirect: []string{"x@c.test", "y@c.test"},
			ran:      2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			var fs []Filter
			var ffs []*funcFilter
			for i, v := range tc.verdicts {
				f := verdictFilter(string(rune('a'+i)), v)
				fs, ffs = append(fs, f), append(ffs, f)
			}
			out := e.pipeline(fs...).Deliver(context.Background(), request(testMsg, alice))
			ran := 0
			for _, f := range ffs {
				ran += int(f.calls.Load())
			}
			if ran != tc.ran {
				t.Errorf("%d filters ran, want %d", ran, tc.ran)
			}
			err := errOf(t, out, alice)
			if tc.reject != 0 {
				if !isReject(err, tc.reject) {
					t.Fatalf("got %v, want a %d reject", err, tc.reject)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			m := e.mail(alice)
			switch {
			case tc.mailbox == "" && len(m) != 0:
				t.Fatalf("stored %+v, want nothing", m)
			case tc.mailbox != "" && (len(m) != 1 || m[0].Mailbox != tc.mailbox):
				t.Fatalf("stored %+v, want one copy in %s", m, tc.mailbox)
			case tc.mailbox != "":
				if want := "Return-Path: <sender@remote.test>\r\n" + tc.header + "Received: from client.test\r\n" + testMsg; m[0].Body != want {
					t.Errorf("stored %q, want %q", m[0].Body, want)
				}
				if !sameSet(m[0].Flags, tc.flags) {
					t.Errorf("flags %q, want %q", m[0].Flags, tc.flags)
				}
			}
			var redirected []string
			for _, q := range e.queue.all() {
				redirected = append(redirected, q.rcpts...)
			}
			if !slices.Equal(redirected, tc.redirect) {
				t.Errorf("redirected to %q, want %q", redirected, tc.redirect)
			}
		})
	}
}

// TestAllRejectedStops: once every recipient is rejected, later filters
// do not run; while one is not, they do.
func TestAllRejectedStops(t *testing.T) {
	e := newTestEnv(t)
	first := rcptFilter("first", Verdict{}, map[string]Verdict{alice: {Action: Reject}})
	second := verdictFilter("second", Verdict{Action: Reject})
	third := verdictFilter("third", Verdict{})
	out := e.pipeline(first, second, third).Deliver(context.Background(), request(testMsg, alice, bob))
	if first.calls.Load() != 1 || second.calls.Load() != 1 || third.calls.Load() != 0 {
		t.Errorf("calls %d %d %d, want 1 1 0", first.calls.Load(), second.calls.Load(), third.calls.Load())
	}
	for _, acct := range []string{alice, bob} {
		var re *RejectError
		if err := errOf(t, out, acct); !errors.As(err, &re) {
			t.Errorf("%s: %v", acct, err)
		} else if want := map[string]string{alice: "first", bob: "second"}[acct]; re.Filter != want {
			t.Errorf("%s rejected by %s, want %s", acct, re.Filter, want)
		}
	}
}

// TestQuotaFull: a full account fails alone with ErrOverQuota (smtpd's
// 452 4.2.2, the queue's retry); the others get their copy.
func TestQuotaFull(t *testing.T) {
	e := newTestEnv(t)
	e.quota[bob].Store(10)
	out := e.pipeline(verdictFilter("keep", Verdict{})).Deliver(context.Background(), request(testMsg, alice, bob))
	if err := errOf(t, out, alice); err != nil {
		t.Errorf("alice: %v", err)
	}
	if err := errOf(t, out, bob); !errors.Is(err, mailstore.ErrOverQuota) {
		t.Errorf("bob: %v, want ErrOverQuota", err)
	}
	if len(e.mail(alice)) != 1 || len(e.mail(bob)) != 0 {
		t.Errorf("alice %d, bob %d messages", len(e.mail(alice)), len(e.mail(bob)))
	}
}

// TestFilterFailure: a filter error, a panic or a verdict that does not
// check fails every recipient temporarily, after earlier filters asked for
// redirects and mailboxes, and nothing is stored or queued.
func TestFilterFailure(t *testing.T) {
	tests := []struct {
		name string
		fn   func(context.Context, *Message) (Decision, error)
		log  string
	}{
		{name: "error", fn: func(context.Context, *Message) (Decision, error) {
			return Decision{}, errors.New("spam database unreachable")
		}, log: "spam database unreachable"},
		{name: "panic", fn: func(context.Context, *Message) (Decision, error) { panic("index out of range") }, log: "filter panicked"},
		{name: "nil map panic", fn: func(context.Context, *Message) (Decision, error) {
			var m map[string]int
			m["x"]++
			return Decision{}, nil
		}, log: "stack="},
		{name: "field with a bare LF", fn: decide(Verdict{Headers: []Field{{Name: "X-Bad", Value: "a\nRCPT TO:<x@y>"}}}), log: "bare LF"},
		{name: "field with CRLF not folded", fn: decide(Verdict{Headers: []Field{{Name: "X-Bad", Value: "a\r\nX-Injected: 1"}}}), log: "not a fold"},
		{name: "field name with a colon", fn: decide(Verdict{Headers: []Field{{Name: "X-Bad:", Value: "a"}}}), log: "bad header field name"},
		{name: "field line too long", fn: decide(Verdict{Headers: []Field{{Name: "X-Long", Value: strings.Repeat("a", 1000)}}}), log: "longer than 998"},
		{name: "too many fields", fn: decide(Verdict{Headers: manyFields(40, 500)}), log: "in all"},
		{name: "reply code not 4xx or 5xx", fn: decide(Verdict{Action: Reject, Reply: Reply{Code: 250, Enhanced: [3]int{2, 0, 0}, Text: "ok"}}), log: "bad reply code"},
		{name: "reply class mismatch", fn: decide(Verdict{Action: Reject, Reply: Reply{Code: 550, Enhanced: [3]int{4, 7, 1}, Text: "x"}}), log: "bad reply code"},
		{name: "reply text with CRLF", fn: decide(Verdict{Action: Reject, Reply: Reply{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: "x\r\n250 ok"}}), log: "bad reply text"},
		{name: "flag not an atom", fn: decide(Verdict{Flags: []string{"two words"}}), log: "bad flag"},
		{name: "unknown system flag", fn: decide(Verdict{Flags: []string{`\Recent`}}), log: "bad flag"},
		{name: "redirect not an address", fn: decide(Verdict{Redirect: []string{"x@c.test>\r\nDATA"}}), log: "bad redirect"},
		{name: "unknown action", fn: decide(Verdict{Action: 7}), log: "unknown action"},
		{name: "verdict for a stranger", fn: func(context.Context, *Message) (Decision, error) {
			return Decision{Rcpt: map[string]Verdict{"eve@a.test": {}}}, nil
		}, log: "not a recipient"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			before := verdictFilter("before", Verdict{Mailbox: "Junk", Redirect: []string{"x@c.test"}})
			after := verdictFilter("after", Verdict{})
			out := e.pipeline(before, &funcFilter{name: "broken", fn: tc.fn}, after).Deliver(context.Background(), request(testMsg, alice, bob))
			for _, acct := range []string{alice, bob} {
				if err := errOf(t, out, acct); !errors.Is(err, ErrFilter) {
					t.Errorf("%s: %v, want ErrFilter", acct, err)
				}
				if m := e.mail(acct); len(m) != 0 {
					t.Errorf("%s got %d messages", acct, len(m))
				}
			}
			if q := e.queue.all(); len(q) != 0 {
				t.Errorf("queued %+v", q)
			}
			if after.calls.Load() != 0 {
				t.Error("a filter after the failed one ran")
			}
			if l := e.log(); !strings.Contains(l, "filter=broken") || !strings.Contains(l, tc.log) {
				t.Errorf("log lacks filter=broken and %q:\n%s", tc.log, l)
			}
		})
	}
}

func decide(v Verdict) func(context.Context, *Message) (Decision, error) {
	return func(context.Context, *Message) (Decision, error) { return Decision{All: v}, nil }
}

func manyFields(n, size int) []Field {
	var fs []Field
	for range n {
		fs = append(fs, Field{Name: "X-Pad", Value: strings.Repeat("p", size)})
	}
	return fs
}

// TestRedirectFailure: when the redirect cannot be queued, the account
// fails temporarily and gets no copy (its retry redirects and stores).
func TestRedirectFailure(t *testing.T) {
	e := newTestEnv(t)
	e.queue.err = errors.New("queue disk full")
	out := e.pipeline(verdictFilter("fwd", Verdict{Redirect: []string{"x@c.test"}})).Deliver(context.Background(), request(testMsg, alice))
	if err := errOf(t, out, alice); err == nil || errors.Is(err, ErrFilter) {
		t.Fatalf("got %v", err)
	}
	if len(e.mail(alice)) != 0 {
		t.Error("stored although the redirect failed")
	}

	// Without a queue at all: a configuration error, temporary.
	p, err := New(Options{Directory: e.dir, Store: MailStore(e.store), Filters: []Filter{verdictFilter("fwd", Verdict{Redirect: []string{"x@c.test"}})}})
	if err != nil {
		t.Fatal(err)
	}
	if err := errOf(t, p.Deliver(context.Background(), request(testMsg, alice)), alice); !errors.Is(err, ErrNoQueue) {
		t.Fatalf("got %v, want ErrNoQueue", err)
	}
}

// TestFilterSees: a filter gets the envelope, the resolved recipients, the
// header (with the caller's trace fields) and a body it can read twice.
func TestFilterSees(t *testing.T) {
	e := newTestEnv(t)
	var seen struct {
		env     Envelope
		rcpts   []Recipient
		subject string
		trace   string
		body    [2]string
		size    int64
		same    bool
	}
	f := &funcFilter{name: "look", fn: func(ctx context.Context, m *Message) (Decision, error) {
		seen.env, seen.rcpts, seen.size = m.Envelope, m.Recipients, m.Size()
		h := m.Header()
		seen.subject, seen.trace = h.Get("Subject"), h.Get("Received")
		seen.same = h == m.Header() && h.Complete
		for i := range seen.body {
			b, err := io.ReadAll(m.Body())
			if err != nil {
				return Decision{}, err
			}
			seen.body[i] = string(b)
		}
		return Decision{}, nil
	}}
	req := request(testMsg, "team@a.test")
	req.Envelope.Client = Client{Helo: "client.test", TLSVersion: 0x0304, User: ""}
	if out := e.pipeline(f).Deliver(context.Background(), req); errOf(t, out, alice) != nil {
		t.Fatal(out)
	}
	whole := "Received: from client.test\r\n" + testMsg
	if seen.env != req.Envelope || seen.subject != "hello" || seen.trace != "from client.test" ||
		seen.body[0] != whole || seen.body[1] != whole || seen.size != int64(len(whole)) || !seen.same {
		t.Errorf("filter saw %+v", seen)
	}
	if len(seen.rcpts) != 2 || seen.rcpts[0].Account != alice || seen.rcpts[1].Account != bob ||
		!slices.Equal(seen.rcpts[0].Addresses, []string{"team@a.test"}) {
		t.Errorf("recipients %+v", seen.rcpts)
	}
}

func TestNewChecks(t *testing.T) {
	e := newTestEnv(t)
	if _, err := New(Options{Store: MailStore(e.store)}); err == nil {
		t.Error("no Directory accepted")
	}
	if _, err := New(Options{Directory: e.dir, Store: MailStore(e.store), Filters: []Filter{nil}}); err == nil {
		t.Error("nil filter accepted")
	}
}

// TestLaterFiltersSeeAddedFields: a filter sees, in Added, the fields the
// filters before it added for every recipient, in order; per-account
// fields and a filter's own are not there.
func TestLaterFiltersSeeAddedFields(t *testing.T) {
	e := newTestEnv(t)
	ar := Field{Name: "Authentication-Results", Value: "mx.test; dmarc=fail"}
	x := Field{Name: "X-First", Value: "1"}
	var seen [][]Field
	look := func(name string, d Decision) *funcFilter {
		return &funcFilter{name: name, fn: func(_ context.Context, m *Message) (Decision, error) {
			seen = append(seen, slices.Clone(m.Added()))
			return d, nil
		}}
	}
	p := e.pipeline(
		look("one", Decision{All: Verdict{Headers: []Field{x}}}),
		look("two", Decision{All: Verdict{Headers: []Field{ar}}, Rcpt: map[string]Verdict{alice: {Headers: []Field{{Name: "X-Rcpt", Value: "a"}}}}}),
		look("three", Decision{}),
	)
	if err := errOf(t, p.Deliver(context.Background(), request(testMsg, alice)), alice); err != nil {
		t.Fatal(err)
	}
	want := [][]Field{nil, {x}, {x, ar}}
	if len(seen) != 3 || !slices.Equal(seen[0], want[0]) || !slices.Equal(seen[1], want[1]) || !slices.Equal(seen[2], want[2]) {
		t.Errorf("Added as seen by each filter: %v, want %v", seen, want)
	}
}
