package delivery

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/posthouse/posthouse/internal/readerat"
	"github.com/posthouse/posthouse/mailstore"
)

// TestCopies: a verdict with several copies stores one per mailbox, the
// default place taking the earlier filters' mailbox and flags; a missing
// mailbox is INBOX unless created; copies into one mailbox merge.
func TestCopies(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	a, _ := e.store.Open(ctx, alice)
	if _, err := a.CreateMailbox(ctx, "Work", ""); err != nil {
		t.Fatal(err)
	}
	a.Close()
	junkish := verdictFilter("junk", Verdict{Mailbox: "Junk", Flags: []string{"$Junk"}})
	sieve := verdictFilter("sieve", Verdict{Copies: []Copy{
		{Mailbox: "Work", Flags: []string{`\Flagged`}},
		{Mailbox: "Lists/new", Create: true},
		{Mailbox: "Missing"},
		{Flags: []string{`\Seen`}},
		{Mailbox: "work2"},
		{Mailbox: "Work", Flags: []string{"$label1"}},
	}})
	out := e.pipeline(junkish, sieve).Deliver(ctx, request(testMsg, alice))
	if err := errOf(t, out, alice); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	n := 0
	for _, m := range e.mail(alice) {
		got[m.Mailbox] = append(got[m.Mailbox], strings.Join(m.Flags, " "))
		n++
	}
	want := map[string][]string{
		"Work":      {`$label1 \Flagged`},
		"Lists/new": {""},
		"INBOX":     {"", ""}, // Missing and work2 (not created)
		"Junk":      {`$Junk \Seen`},
	}
	for mbox, flags := range want {
		g := got[mbox]
		for i := range g {
			f := strings.Fields(g[i])
			slices.Sort(f)
			g[i] = strings.Join(f, " ")
		}
		if !slices.Equal(g, flags) {
			t.Errorf("%s: flags %q, want %q (all: %v)", mbox, g, flags, got)
		}
	}
	if n != 5 {
		t.Errorf("%d copies, want 5: %v", n, got)
	}
}

func TestResolveCopies(t *testing.T) {
	for _, tc := range []struct {
		name string
		pl   plan
		want []Copy
	}{
		{"none", plan{mailbox: "Junk", flags: []string{"$Junk"}}, []Copy{{Mailbox: "Junk", Flags: []string{"$Junk"}}}},
		{"inbox merges", plan{copies: []Copy{{Mailbox: "inbox", Flags: []string{"a"}}, {Flags: []string{"b"}}, {Mailbox: "INBOX", Flags: []string{"A"}}}},
			[]Copy{{Flags: []string{"a", "b"}}}},
		{"default place with flags", plan{mailbox: "Junk", flags: []string{"$Junk"}, copies: []Copy{{Flags: []string{`\Seen`}}, {Mailbox: "Junk"}}},
			[]Copy{{Mailbox: "Junk", Flags: []string{"$Junk", `\Seen`}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.pl.resolveCopies()
			if len(got) != len(tc.want) {
				t.Fatalf("%+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i].Mailbox != tc.want[i].Mailbox || !slices.Equal(got[i].Flags, tc.want[i].Flags) {
					t.Errorf("%d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestAppendFields: Verdict.Append goes after the last field of the
// stored and the redirected copy.
func TestAppendFields(t *testing.T) {
	e := newTestEnv(t)
	f := verdictFilter("sieve", Verdict{
		Headers:  []Field{{"X-Top", "1"}},
		Append:   []Field{{"X-Bottom", "1"}, {"X-Bottom", "2"}},
		Redirect: []string{"x@c.test"},
	})
	out := e.pipeline(f).Deliver(context.Background(), request(testMsg, alice))
	if err := errOf(t, out, alice); err != nil {
		t.Fatal(err)
	}
	head, body, _ := strings.Cut(testMsg, "\r\n\r\n")
	want := "Return-Path: <sender@remote.test>\r\nX-Top: 1\r\nReceived: from client.test\r\n" + head + "\r\nX-Bottom: 1\r\nX-Bottom: 2\r\n\r\n" + body
	if m := e.mail(alice); len(m) != 1 || m[0].Body != want {
		t.Fatalf("stored %q\nwant %q", m, want)
	}
	q := e.queue.all()
	if len(q) != 1 || q[0].body != strings.TrimPrefix(want, "Return-Path: <sender@remote.test>\r\n") {
		t.Fatalf("redirected %+v", q)
	}
}

func TestHeaderEnd(t *testing.T) {
	for _, tc := range []struct {
		name, msg string
		end       int
		ok        bool
	}{
		{"usual", "A: 1\r\nB: 2\r\n\r\nbody", 12, true},
		{"lf", "A: 1\n\nbody", 5, true},
		{"no body", "A: 1\r\n", 6, true},
		{"no line end", "A: 1", 0, false},
		{"empty header", "\r\nbody", 0, true},
		{"too long", "A: " + strings.Repeat("x", MaxHeaderBytes) + "\r\n\r\n", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end, ok := headerEnd(readerat.String(tc.msg))
			if ok != tc.ok || ok && end != int64(tc.end) {
				t.Errorf("headerEnd = %d, %v; want %d, %v", end, ok, tc.end, tc.ok)
			}
		})
	}
}

// TestCommitted: the hook hears of each account's outcome once: nil when
// stored, the reject when refused, the store's error when it failed; not
// at all when the whole message failed.
func TestCommitted(t *testing.T) {
	e := newTestEnv(t)
	var mu sync.Mutex
	got := map[string][]error{}
	hook := func(acct string) func(context.Context, error) {
		return func(_ context.Context, err error) {
			mu.Lock()
			got[acct] = append(got[acct], err)
			mu.Unlock()
		}
	}
	e.quota[carol].Store(1) // full
	f := rcptFilter("sieve", Verdict{}, map[string]Verdict{
		alice: {Committed: hook(alice)},
		bob:   {Action: Reject, Committed: hook(bob)},
		carol: {Committed: hook(carol)},
	})
	p := e.pipeline(f)
	p.Deliver(context.Background(), request(testMsg, alice, bob, carol))
	if errs := got[alice]; len(errs) != 1 || errs[0] != nil {
		t.Errorf("alice: %v", errs)
	}
	if errs := got[bob]; len(errs) != 1 || !isReject(errs[0], 550) {
		t.Errorf("bob: %v", errs)
	}
	if errs := got[carol]; len(errs) != 1 || !errors.Is(errs[0], mailstore.ErrOverQuota) {
		t.Errorf("carol: %v", errs)
	}

	// A later filter failing: no hook runs.
	got = map[string][]error{}
	failing := &funcFilter{name: "broken", fn: func(context.Context, *Message) (Decision, error) { return Decision{}, io.ErrUnexpectedEOF }}
	e.pipeline(f, failing).Deliver(context.Background(), request(testMsg, alice))
	if len(got) != 0 {
		t.Errorf("hooks ran for a failed message: %v", got)
	}
}

// TestCopiesChecked: a verdict's copies are checked like its mailbox.
func TestCopiesChecked(t *testing.T) {
	for _, v := range []Verdict{
		{Copies: []Copy{{Mailbox: "a\r\nb"}}},
		{Copies: []Copy{{Flags: []string{"bad flag"}}}},
		{Copies: make([]Copy, maxCopies+1)},
		{Append: []Field{{Name: "Bad:Name", Value: "x"}}},
	} {
		if err := v.validate(); err == nil {
			t.Errorf("accepted %+v", v)
		}
	}
}
