package sievefilter

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/sieve"
	"github.com/posthouse/posthouse/sievestore"
)

const sender = "carol@remote.test"

func TestActions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		msg    string
		where  []string // alice's mailboxes, sorted
		flags  map[string]string
		reject string // the reply text, when rejected
		queued []string
	}{
		{
			name:  "no script",
			where: []string{"INBOX"},
		},
		{
			name:   "fileinto and keep with flags",
			script: `require ["fileinto", "imap4flags"]; fileinto :flags "\\Flagged" "Junk"; keep :flags ["$label1", "\\Seen"];`,
			where:  []string{"INBOX", "Junk"},
			flags:  map[string]string{"INBOX": `$label1 \Seen`, "Junk": `\Flagged`},
		},
		{
			name:   "fileinto cancels the implicit keep",
			script: `require "fileinto"; if header :contains "subject" "report" { fileinto "Junk"; }`,
			msg:    mailFrom(sender, "the report"),
			where:  []string{"Junk"},
		},
		{
			name:   "fileinto create",
			script: `require ["fileinto", "mailbox"]; fileinto :create "Lists/Go"; fileinto "Missing";`,
			where:  []string{"INBOX", "Lists/Go"},
		},
		{
			name:   "mailboxexists",
			script: `require ["fileinto", "mailbox"]; if mailboxexists "Junk" { fileinto "Junk"; }`,
			where:  []string{"Junk"},
		},
		{
			name:   "discard",
			script: `discard;`,
		},
		{
			name:   "reject",
			script: "require \"reject\"; reject text:\nNot from you, thanks.\nBye ünïcode\n.\n;",
			reject: "Not from you, thanks. Bye ?n?code",
		},
		{
			name:   "ereject",
			script: `require "ereject"; ereject "go away";`,
			reject: "go away",
		},
		{
			name:   "redirect",
			script: `redirect "dave@elsewhere.test";`,
			queued: []string{"dave@elsewhere.test"},
		},
		{
			name:   "redirect copy",
			script: `require "copy"; redirect :copy "dave@elsewhere.test";`,
			where:  []string{"INBOX"},
			queued: []string{"dave@elsewhere.test"},
		},
		{
			name:   "runtime error keeps",
			script: `require "include"; include "missing"; discard;`,
			where:  []string{"INBOX"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.script != "" {
				e.script(alice, tc.script)
			}
			msg := tc.msg
			if msg == "" {
				msg = mailFrom(sender, "hello")
			}
			out := e.deliver(sender, msg, alice)
			err := errFor(t, out, alice)
			if tc.reject != "" {
				var re *delivery.RejectError
				if !errors.As(err, &re) || re.Reply.Code != 550 || re.Reply.Enhanced != [3]int{5, 7, 1} || re.Reply.Text != tc.reject {
					t.Fatalf("err %v, want 550 5.7.1 %q", err, tc.reject)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			got := e.where(alice)
			slices.Sort(got)
			if !slices.Equal(got, tc.where) {
				t.Errorf("stored in %v, want %v", got, tc.where)
			}
			for _, m := range e.stored(alice) {
				want, ok := tc.flags[m.Mailbox]
				if !ok {
					continue
				}
				f := slices.Clone(m.Flags)
				slices.Sort(f)
				if strings.Join(f, " ") != want {
					t.Errorf("%s flags %v, want %s", m.Mailbox, m.Flags, want)
				}
			}
			var to []string
			for _, q := range e.queue.take() {
				if q.from != sender {
					t.Errorf("redirect from %q", q.from)
				}
				if !strings.Contains(q.body, TraceField+": "+alice+"\r\n") {
					t.Errorf("redirect without the trace field: %q", q.body)
				}
				to = append(to, q.rcpts...)
			}
			if !slices.Equal(to, tc.queued) {
				t.Errorf("queued to %v, want %v", to, tc.queued)
			}
		})
	}
}

// TestRedirectLoop: alice redirects to bob, bob to alice; the message
// that comes back to alice carries her trace field and is kept.
func TestRedirectLoop(t *testing.T) {
	e := newEnv(t)
	e.script(alice, `redirect "bob@a.test";`)
	e.script(bob, `redirect "alice@a.test";`)
	e.deliver(sender, mailFrom(sender, "loop"), alice)
	for hop := 0; hop < 4; hop++ {
		q := e.queue.take()
		if len(q) == 0 {
			break
		}
		if len(q) != 1 {
			t.Fatalf("hop %d: %d entries", hop, len(q))
		}
		e.deliver(q[0].from, q[0].body, q[0].rcpts...)
	}
	if n := len(e.queue.take()); n != 0 {
		t.Fatalf("still redirecting: %d", n)
	}
	got := e.stored(alice)
	if len(got) != 1 || strings.Count(got[0].Body, TraceField) != 2 {
		t.Fatalf("alice has %d copies: %+v", len(got), got)
	}
	if len(e.stored(bob)) != 0 {
		t.Fatal("bob kept a copy")
	}
	if !strings.Contains(e.logs.String(), "redirect loop") {
		t.Error("loop not logged")
	}
}

// TestHeaderEdits: addheader on top and :last, deleteheader of the
// message's own field.
func TestHeaderEdits(t *testing.T) {
	e := newEnv(t)
	e.script(alice, `require "editheader"; addheader "X-Top" "1"; addheader :last "X-Bottom" "2"; deleteheader "X-Drop";`)
	e.deliver(sender, mailFrom(sender, "edit", "X-Drop: a", "X-Keep: b"), alice)
	got := e.stored(alice)
	if len(got) != 1 {
		t.Fatal(got)
	}
	b := got[0].Body
	head, _, _ := strings.Cut(b, "\r\n\r\n")
	if !strings.HasPrefix(head, "Return-Path: <"+sender+">\r\nX-Top: 1\r\n") || !strings.HasSuffix(head, "X-Keep: b\r\nX-Bottom: 2") || strings.Contains(b, "X-Drop") {
		t.Fatalf("header:\n%s", head)
	}
}

// junkLike is a filter before ours that adds the junk filter's field for
// alice, and files to Junk with $Junk when spam.
type junkLike struct{ value string }

func (j junkLike) Name() string { return "junk" }
func (j junkLike) Check(context.Context, *delivery.Message) (delivery.Decision, error) {
	v := delivery.Verdict{Headers: []delivery.Field{{Name: "X-Posthouse-Junk", Value: j.value}}}
	if strings.HasPrefix(j.value, "yes") {
		v.Mailbox, v.Flags = "Junk", []string{"$Junk"}
	}
	return delivery.Decision{Rcpt: map[string]delivery.Verdict{alice: v}}, nil
}

func TestSpamtest(t *testing.T) {
	const script = `require ["spamtestplus", "relational", "comparator-i;ascii-numeric", "fileinto", "imap4flags"];
if spamtest :percent :value "ge" :comparator "i;ascii-numeric" "50" { addflag "\\Flagged"; fileinto "INBOX"; stop; }
if spamtest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "Untested"; stop; }
`
	for _, tc := range []struct {
		name, field string
		forged      string
		where       string
	}{
		{"spam", "yes; score=0.973; threshold=0.900", "", "INBOX"},
		{"ham", "no; score=0.120; threshold=0.900", "X-Posthouse-Junk: yes; score=1.000; threshold=0.900", "Lists"},
		{"untrained", "untrained; spam=1; ham=2", "", "Untested"},
		{"no junk filter, forged field", "", "X-Posthouse-Junk: yes; score=1.000; threshold=0.900", "Untested"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			a, _ := e.mail.Open(ctx, alice)
			a.CreateMailbox(ctx, "Untested", "")
			a.CreateMailbox(ctx, "Lists", "")
			a.Close()
			if tc.field != "" {
				e.before = junkLike{tc.field}
			}
			s := script + `fileinto "Lists";`
			e.script(alice, s)
			var extra []string
			if tc.forged != "" {
				extra = append(extra, tc.forged)
			}
			if err := errFor(t, e.deliver(sender, mailFrom(sender, "s", extra...), alice), alice); err != nil {
				t.Fatal(err)
			}
			if got := e.where(alice); !slices.Equal(got, []string{tc.where}) {
				t.Fatalf("stored in %v, want %s", got, tc.where)
			}
		})
	}
}

// TestImplicitKeepFollowsJunk: with no action of its own, the copy goes
// where the junk filter put it, and an explicit fileinto "INBOX" moves it.
func TestImplicitKeepFollowsJunk(t *testing.T) {
	e := newEnv(t)
	e.before = junkLike{"yes; score=0.990; threshold=0.900"}
	e.script(alice, `require "imap4flags"; addflag "$seen-by-sieve";`)
	e.deliver(sender, mailFrom(sender, "x"), alice)
	got := e.stored(alice)
	if len(got) != 1 || got[0].Mailbox != "Junk" || !slices.Contains(got[0].Flags, "$Junk") || !slices.Contains(got[0].Flags, "$seen-by-sieve") {
		t.Fatalf("%+v", got)
	}
}

func TestDuplicate(t *testing.T) {
	e := newEnv(t)
	e.script(alice, `require "duplicate"; if duplicate { discard; stop; }`)
	msg := mailFrom(sender, "dup")
	// The first delivery fails (full mailbox): it is not recorded, so the
	// retry is no duplicate.
	e.quota.Store(1)
	if err := errFor(t, e.deliver(sender, msg, alice), alice); !errors.Is(err, mailstore.ErrOverQuota) {
		t.Fatalf("full mailbox: %v", err)
	}
	e.quota.Store(0)
	e.deliver(sender, msg, alice)
	e.deliver(sender, msg, alice)
	if n := len(e.stored(alice)); n != 1 {
		t.Fatalf("%d copies, want 1", n)
	}
	e.clock.add(8 * 24 * time.Hour) // the default period is 7 days
	e.deliver(sender, msg, alice)
	if n := len(e.stored(alice)); n != 2 {
		t.Fatalf("%d copies after expiry, want 2", n)
	}
}

// TestBadStoredScript: a script that no longer compiles (the site
// disabled an extension) keeps the message.
func TestBadStoredScript(t *testing.T) {
	e := newEnv(t)
	e.script(alice, `require "fileinto"; fileinto "Junk";`)
	ctx := context.Background()
	strict, err := sievestore.Open(ctx, e.path, sievestore.Options{Compile: sieve.Options{Disabled: []string{"fileinto"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	f, _ := New(Options{Store: strict, Queue: e.queue})
	e.filter = f
	e.deliver(sender, mailFrom(sender, "x"), alice)
	if got := e.where(alice); !slices.Equal(got, []string{"INBOX"}) {
		t.Fatalf("stored in %v", got)
	}
}
