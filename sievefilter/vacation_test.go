package sievefilter

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/sievestore"
)

const vacationScript = `require ["vacation", "fileinto"];
vacation :days 3 :addresses ["alice.work@a.test"] "I am away until Monday.";
`

func TestVacationResponse(t *testing.T) {
	e := newEnv(t)
	e.script(alice, vacationScript)
	msg := mailFrom("Carol <"+sender+">", "Lunch?", "References: <m0@remote.test>")
	e.deliver(sender, msg, alice)
	q := e.queue.take()
	if len(q) != 1 {
		t.Fatalf("%d responses", len(q))
	}
	r := q[0]
	if r.from != "" || len(r.rcpts) != 1 || r.rcpts[0] != sender {
		t.Fatalf("envelope %q → %v", r.from, r.rcpts)
	}
	m, err := mail.ReadMessage(strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"From":           "<" + alice + ">",
		"To":             "<" + sender + ">",
		"Subject":        "Auto: Lunch?",
		"In-Reply-To":    "<m1@remote.test>",
		"References":     "<m0@remote.test> <m1@remote.test>",
		"Auto-Submitted": "auto-replied (vacation)",
		"Content-Type":   "text/plain; charset=us-ascii",
	} {
		if got := m.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if id := m.Header.Get("Message-ID"); !strings.HasSuffix(id, "@mx.a.test>") {
		t.Errorf("Message-ID %q", id)
	}
	body, _ := io.ReadAll(m.Body)
	if string(body) != "I am away until Monday.\r\n" {
		t.Errorf("body %q", body)
	}
	if !strings.Contains(r.body, "\r\n") || strings.Contains(strings.ReplaceAll(r.body, "\r\n", ""), "\n") {
		t.Error("response lines do not end in CRLF")
	}
	// The copy is stored as usual.
	if n := len(e.stored(alice)); n != 1 {
		t.Fatalf("%d copies", n)
	}

	// Once per :days per sender.
	e.clock.add(2 * 24 * time.Hour)
	e.deliver(sender, msg, alice)
	if n := len(e.queue.take()); n != 0 {
		t.Fatalf("answered again within the period: %d", n)
	}
	e.deliver("dave@remote.test", strings.ReplaceAll(msg, sender, "dave@remote.test"), alice)
	if n := len(e.queue.take()); n != 1 {
		t.Fatalf("another sender: %d responses", n)
	}
	e.clock.add(24*time.Hour + time.Second)
	e.deliver(sender, msg, alice)
	if n := len(e.queue.take()); n != 1 {
		t.Fatalf("after the period: %d responses", n)
	}
}

func TestVacationSkips(t *testing.T) {
	for _, tc := range []struct {
		name, from, msg string
		rcpt            string
	}{
		{"null sender", "", mailFrom(sender, "x"), alice},
		{"list", sender, mailFrom(sender, "x", "List-Id: <golang-nuts.googlegroups.com>"), alice},
		{"list unsubscribe", sender, mailFrom(sender, "x", "List-Unsubscribe: <mailto:u@l.test>"), alice},
		{"bulk", sender, mailFrom(sender, "x", "Precedence: bulk"), alice},
		{"junk precedence", sender, mailFrom(sender, "x", "Precedence: junk"), alice},
		{"auto-submitted", sender, mailFrom(sender, "x", "Auto-Submitted: auto-generated"), alice},
		{"mailer-daemon", "MAILER-DAEMON@remote.test", mailFrom(sender, "x"), alice},
		{"own address", alice, mailFrom(alice, "x"), alice},
		{"not addressed", sender, strings.Replace(mailFrom(sender, "x"), "To: Alice <alice@a.test>", "To: list@remote.test", 1), alice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.script(alice, vacationScript)
			e.deliver(tc.from, tc.msg, tc.rcpt)
			if n := len(e.queue.take()); n != 0 {
				t.Fatalf("%d responses", n)
			}
			if !strings.Contains(e.logs.String(), "no vacation response") {
				t.Error("skip not logged")
			}
		})
	}
	// Addressed through :addresses or an alias that reached the account.
	for _, tc := range []struct{ name, to, rcpt string }{
		{":addresses", "alice.work@a.test", alice},
		{"alias", "alias@a.test", "alias@a.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.script(alice, vacationScript)
			msg := strings.Replace(mailFrom(sender, "x"), "To: Alice <alice@a.test>", "To: "+tc.to, 1)
			e.deliver(sender, msg, tc.rcpt)
			if n := len(e.queue.take()); n != 1 {
				t.Fatalf("%d responses", n)
			}
		})
	}
}

// TestVacationJunk: no response to mail judged junk (backscatter).
func TestVacationJunk(t *testing.T) {
	e := newEnv(t)
	e.before = junkLike{"yes; score=0.990; threshold=0.900"}
	e.script(alice, vacationScript)
	e.deliver(sender, mailFrom(sender, "x"), alice)
	if n := len(e.queue.take()); n != 0 {
		t.Fatalf("%d responses to junk", n)
	}
}

// TestVacationQueueFails: a response the queue refused is not
// remembered; the next message is answered.
func TestVacationQueueFails(t *testing.T) {
	e := newEnv(t)
	e.script(alice, vacationScript)
	e.queue.fail = errors.New("disk full")
	if err := errFor(t, e.deliver(sender, mailFrom(sender, "x"), alice), alice); err != nil {
		t.Fatalf("delivery failed with the response: %v", err)
	}
	e.queue.fail = nil
	e.deliver(sender, mailFrom(sender, "x"), alice)
	if n := len(e.queue.take()); n != 1 {
		t.Fatalf("%d responses", n)
	}
}

func TestVacationMIMEAndFrom(t *testing.T) {
	e := newEnv(t)
	e.script(alice, "require [\"vacation\"];\nvacation :from \"Alice Ünï <alice@a.test>\" :subject \"Abwesend: Grüße\" :mime text:\nContent-Type: text/html; charset=utf-8\n\n<p>Away</p>\n.\n;")
	e.deliver(sender, mailFrom(sender, "x"), alice)
	q := e.queue.take()
	if len(q) != 1 {
		t.Fatalf("%d responses", len(q))
	}
	m, err := mail.ReadMessage(strings.NewReader(q[0].body))
	if err != nil {
		t.Fatal(err)
	}
	dec := new(mime.WordDecoder)
	if s, _ := dec.DecodeHeader(m.Header.Get("Subject")); s != "Abwesend: Grüße" {
		t.Errorf("subject %q", s)
	}
	from, err := m.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Alice Ünï" || from[0].Address != alice {
		t.Errorf("From %v %v", from, err)
	}
	if ct := m.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	body, _ := io.ReadAll(m.Body)
	if string(body) != "<p>Away</p>\r\n" {
		t.Errorf("body %q", body)
	}
}

// TestAdminVacation: the administrator's out-of-office applies beside
// the user's script (whose filing still happens), within its dates, once
// per period, and replaces the script's own response.
func TestAdminVacation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, _ := e.mail.Open(ctx, alice)
	a.CreateMailbox(ctx, "Lists", "")
	a.Close()
	e.script(alice, `require ["fileinto", "vacation"]; fileinto "Lists"; vacation "user's own reply";`)
	now := e.clock.now()
	err := e.sieve.SetVacation(ctx, alice, sievestore.Vacation{Subject: "Out of office", Message: "Back on \"Monday\".\nAlice",
		Start: now.Add(time.Hour), End: now.Add(10 * 24 * time.Hour), Period: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	msg := mailFrom(sender, "x")
	// Before the start: the user's own response.
	e.deliver(sender, msg, alice)
	q := e.queue.take()
	if len(q) != 1 || !strings.Contains(q[0].body, "user's own reply") {
		t.Fatalf("before the start: %+v", q)
	}
	e.clock.add(2 * time.Hour)
	e.deliver("dave@remote.test", strings.ReplaceAll(msg, sender, "dave@remote.test"), alice)
	q = e.queue.take()
	if len(q) != 1 || !strings.Contains(q[0].body, "Subject: Out of office\r\n") || !strings.Contains(q[0].body, "\r\n\r\nBack on \"Monday\".\r\nAlice\r\n") {
		t.Fatalf("out-of-office: %+v", q)
	}
	e.deliver("dave@remote.test", strings.ReplaceAll(msg, sender, "dave@remote.test"), alice)
	if n := len(e.queue.take()); n != 0 {
		t.Fatalf("answered twice: %d", n)
	}
	for _, m := range e.stored(alice) {
		if m.Mailbox != "Lists" {
			t.Errorf("the user's fileinto was not applied: %s", m.Mailbox)
		}
	}
	// Past the end: the user's own again (dave was not answered by it).
	e.clock.add(11 * 24 * time.Hour)
	e.deliver("dave@remote.test", strings.ReplaceAll(msg, sender, "dave@remote.test"), alice)
	q = e.queue.take()
	if len(q) != 1 || !strings.Contains(q[0].body, "user's own reply") {
		t.Fatalf("after the end: %+v", q)
	}
}

// TestAdminVacationWithoutScript: an out-of-office alone.
func TestAdminVacationWithoutScript(t *testing.T) {
	e := newEnv(t)
	if err := e.sieve.SetVacation(context.Background(), alice, sievestore.Vacation{Subject: "Away", Message: "Away."}); err != nil {
		t.Fatal(err)
	}
	e.deliver(sender, mailFrom(sender, "x"), alice)
	if n := len(e.queue.take()); n != 1 {
		t.Fatalf("%d responses", n)
	}
	if got := e.where(alice); len(got) != 1 || got[0] != "INBOX" {
		t.Fatalf("stored in %v", got)
	}
}

// discarder discards every copy, as a milter may.
type discarder struct{}

func (discarder) Name() string { return "milter" }
func (discarder) Check(context.Context, *delivery.Message) (delivery.Decision, error) {
	return delivery.Decision{All: delivery.Verdict{Action: delivery.Discard}}, nil
}

// TestDiscardedBefore: a message an earlier filter discarded runs no
// script and gets no response.
func TestDiscardedBefore(t *testing.T) {
	e := newEnv(t)
	e.before = discarder{}
	e.script(alice, vacationScript+"keep;\n")
	if err := errFor(t, e.deliver(sender, mailFrom(sender, "x"), alice), alice); err != nil {
		t.Fatal(err)
	}
	if n := len(e.queue.take()); n != 0 {
		t.Fatalf("%d responses", n)
	}
	if n := len(e.stored(alice)); n != 0 {
		t.Fatalf("%d copies", n)
	}
}
