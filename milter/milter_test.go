package milter

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/internal/readerat"
)

const testMsg = "From: Sender <sender@remote.test>\r\n" +
	"To: team@a.test\r\n" +
	"Subject: a folded\r\n subject\r\n" +
	"X-Empty:\r\n" +
	"\r\n" +
	"Hello.\r\n.dot line\r\n"

// allActions is what the fake milter asks to do.
const allActions = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine | gomilter.OptChangeBody

func TestConversation(t *testing.T) {
	e := newEnv(t)
	fm := &fakeMilter{body: func(m *gomilter.Modifier) (gomilter.Response, error) {
		m.AddHeader("X-Spam-Score", "1.5")
		m.InsertHeader(1, "X-Inserted", "one\n\ttwo")
		m.ChangeHeader(1, "Subject", "changed")
		m.ChangeHeader(1, "X-Empty", "") // delete
		return gomilter.RespAccept, nil
	}}
	addr := fm.start(t, allActions, 0)
	f := e.filter(Options{Address: addr})
	out := e.deliver([]delivery.Filter{f}, inbound(), testMsg, "team@a.test")
	for _, acct := range []string{alice, bob} {
		if err := resultErr(t, out, acct); err != nil {
			t.Fatalf("%s: %v", acct, err)
		}
		got := e.mail(acct)
		if len(got) != 1 || got[0].Mailbox != "INBOX" {
			t.Fatalf("%s: stored %+v", acct, got)
		}
		want := "Return-Path: <sender@remote.test>\r\nX-Spam-Score: 1.5\r\nX-Inserted: one\r\n\ttwo\r\nSubject: changed\r\nReceived: from client.remote.test"
		// The old Subject and X-Empty are gone.
		rest := "From: Sender <sender@remote.test>\r\nTo: team@a.test\r\n\r\nHello.\r\n.dot line\r\n"
		if !strings.HasPrefix(got[0].Body, want) || !strings.HasSuffix(got[0].Body, "+0000\r\n"+rest) {
			t.Errorf("%s: stored\n%q\nwant it to start with\n%q", acct, got[0].Body, want)
		}
	}

	r := fm.got()
	if r.host != "unknown" || r.family != "tcp4" || r.addr != "192.0.2.10" || r.helo != "client.remote.test" || r.from != "sender@remote.test" {
		t.Errorf("connect/helo/mail = %q %q %q %q %q", r.host, r.family, r.addr, r.helo, r.from)
	}
	if !slices.Equal(r.rcpts, []string{"team@a.test"}) {
		t.Errorf("rcpts = %q, want the envelope recipient once", r.rcpts)
	}
	wantFields := [][2]string{
		{"Received", "from client.remote.test ([192.0.2.10])\n\tby mx.a.test; Thu, 3 Dec 2026 20:00:00 +0000"},
		{"From", "Sender <sender@remote.test>"},
		{"To", "team@a.test"},
		{"Subject", "a folded\n subject"},
		{"X-Empty", ""},
	}
	if !slices.Equal(r.fields, wantFields) {
		t.Errorf("fields =\n%q\nwant\n%q", r.fields, wantFields)
	}
	if string(r.body) != "Hello.\r\n.dot line\r\n" {
		t.Errorf("body = %q", r.body)
	}
	for k, v := range map[string]string{"i": "Q1234", "j": "mx.a.test", "{daemon_name}": "smtp",
		"{client_addr}": "192.0.2.10", "{mail_addr}": "sender@remote.test", "{rcpt_addr}": "team@a.test"} {
		if r.macros[k] != v {
			t.Errorf("macro %s = %q, want %q", k, r.macros[k], v)
		}
	}
	if _, ok := r.macros["{auth_authen}"]; ok {
		t.Error("{auth_authen} sent for an unauthenticated client")
	}
	if !r.ended {
		t.Error("no end of message")
	}
	if !strings.Contains(e.logs.String(), "field=X-Empty index=1 deleted=true") {
		t.Error("the deletion is not logged")
	}
}

func TestActions(t *testing.T) {
	tests := []struct {
		name  string
		fm    *fakeMilter
		check func(t *testing.T, e *env, out delivery.Outcome)
	}{
		{"reject", &fakeMilter{body: respond(gomilter.RespReject)}, func(t *testing.T, e *env, out delivery.Outcome) {
			wantReply(t, rejected(t, out, alice), replyReject)
		}},
		{"tempfail", &fakeMilter{body: respond(gomilter.RespTempFail)}, func(t *testing.T, e *env, out delivery.Outcome) {
			wantReply(t, rejected(t, out, alice), replyTempfail)
		}},
		{"reply code", &fakeMilter{body: respond(gomilter.NewResponseStr('y', "554 5.7.1 Gtube pattern"))}, func(t *testing.T, e *env, out delivery.Outcome) {
			wantReply(t, rejected(t, out, alice), delivery.Reply{Code: 554, Enhanced: [3]int{5, 7, 1}, Text: "Gtube pattern"})
		}},
		{"reply code temporary", &fakeMilter{body: respond(gomilter.NewResponseStr('y', "450 4.2.0 Greylisted, see %%url"))}, func(t *testing.T, e *env, out delivery.Outcome) {
			wantReply(t, rejected(t, out, alice), delivery.Reply{Code: 450, Enhanced: [3]int{4, 2, 0}, Text: "Greylisted, see %url"})
		}},
		{"reply code hostile text", &fakeMilter{body: respond(gomilter.NewResponseStr('y', "550 \x1b[31mred\r\n250 fake success "+strings.Repeat("x", 1000)))}, func(t *testing.T, e *env, out delivery.Outcome) {
			r := rejected(t, out, alice)
			if r.Code != 550 || r.Enhanced != [3]int{5, 7, 1} || len(r.Text) > maxReplyText || strings.ContainsAny(r.Text, "\r\n\x1b") {
				t.Errorf("reply = %+v", r)
			}
		}},
		{"reply code not an error", &fakeMilter{body: respond(gomilter.NewResponseStr('y', "250 2.0.0 fine"))}, func(t *testing.T, e *env, out delivery.Outcome) {
			wantReply(t, rejected(t, out, alice), replyFailed) // a protocol error: on_error
		}},
		{"discard", &fakeMilter{body: respond(gomilter.RespDiscard)}, func(t *testing.T, e *env, out delivery.Outcome) {
			if err := resultErr(t, out, alice); err != nil {
				t.Fatal(err)
			}
			if got := e.mail(alice); len(got) != 0 {
				t.Errorf("discarded message stored: %+v", got)
			}
		}},
		{"quarantine", &fakeMilter{body: func(m *gomilter.Modifier) (gomilter.Response, error) {
			m.Quarantine("looks like spam")
			m.AddHeader("X-Spam", "Yes")
			return gomilter.RespContinue, nil
		}}, func(t *testing.T, e *env, out delivery.Outcome) {
			got := e.mail(alice)
			if len(got) != 1 || got[0].Mailbox != "Junk" || !slices.Contains(got[0].Flags, "$Junk") || !strings.Contains(got[0].Body, "\r\nX-Spam: Yes\r\n") {
				t.Errorf("stored %+v, want it in Junk with $Junk and X-Spam", got)
			}
		}},
		{"reject at mail", &fakeMilter{mail: func(string) (gomilter.Response, error) { return gomilter.RespReject, nil }}, func(t *testing.T, e *env, out delivery.Outcome) {
			wantReply(t, rejected(t, out, alice), replyReject)
		}},
		{"accept at connect", &fakeMilter{connect: func() (gomilter.Response, error) { return gomilter.RespAccept, nil },
			body: respond(gomilter.RespReject)}, func(t *testing.T, e *env, out delivery.Outcome) {
			if err := resultErr(t, out, alice); err != nil {
				t.Fatal(err)
			}
		}},
		{"reject while reading the header", &fakeMilter{header: func(name, _ string) (gomilter.Response, error) {
			if name == "Subject" {
				return gomilter.NewResponseStr('y', "550 5.7.0 No such subjects"), nil
			}
			return gomilter.RespContinue, nil
		}}, func(t *testing.T, e *env, out delivery.Outcome) {
			wantReply(t, rejected(t, out, alice), delivery.Reply{Code: 550, Enhanced: [3]int{5, 7, 0}, Text: "No such subjects"})
		}},
		{"body replacement ignored", &fakeMilter{body: func(m *gomilter.Modifier) (gomilter.Response, error) {
			m.ReplaceBody([]byte("other\r\n"))
			return gomilter.RespAccept, nil
		}}, func(t *testing.T, e *env, out delivery.Outcome) {
			got := e.mail(alice)
			if len(got) != 1 || !strings.HasSuffix(got[0].Body, testMsg) {
				t.Errorf("stored %+v, want the original body", got)
			}
			if !strings.Contains(e.logs.String(), "replaces message bodies") {
				t.Error("body replacement not logged")
			}
		}},
		{"malformed added fields dropped", &fakeMilter{body: func(m *gomilter.Modifier) (gomilter.Response, error) {
			m.AddHeader("Bad Name", "x")
			m.AddHeader("X-Long", strings.Repeat("y", 2000))
			m.AddHeader("X-Good", "z")
			for range 100 {
				m.AddHeader("X-Many", "m")
			}
			return gomilter.RespAccept, nil
		}}, func(t *testing.T, e *env, out delivery.Outcome) {
			got := e.mail(alice)
			if len(got) != 1 || !strings.Contains(got[0].Body, "X-Good: z\r\n") || strings.Contains(got[0].Body, "Bad Name") ||
				strings.Contains(got[0].Body, "X-Long") || strings.Count(got[0].Body, "X-Many") != maxAddFields-1 {
				t.Errorf("stored %+v", got)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			addr := tc.fm.start(t, allActions, 0)
			out := e.deliver([]delivery.Filter{e.filter(Options{Address: addr})}, inbound(), testMsg, alice)
			tc.check(t, e, out)
		})
	}
}

func respond(r gomilter.Response) func(*gomilter.Modifier) (gomilter.Response, error) {
	return func(*gomilter.Modifier) (gomilter.Response, error) { return r, nil }
}

func wantReply(t *testing.T, got, want delivery.Reply) {
	t.Helper()
	if got != want {
		t.Errorf("reply = %+v, want %+v", got, want)
	}
}

// A milter refusing one recipient at RCPT refuses only the account all of
// whose addresses it refused; the others get the message.
func TestRecipientRefused(t *testing.T) {
	e := newEnv(t)
	fm := &fakeMilter{rcpt: func(to string) (gomilter.Response, error) {
		if to == bob {
			return gomilter.NewResponseStr('y', "550 5.1.1 No such user here"), nil
		}
		return gomilter.RespContinue, nil
	}}
	addr := fm.start(t, allActions, 0)
	out := e.deliver([]delivery.Filter{e.filter(Options{Address: addr})}, inbound(), testMsg, alice, bob)
	if err := resultErr(t, out, alice); err != nil {
		t.Fatal(err)
	}
	wantReply(t, rejected(t, out, bob), delivery.Reply{Code: 550, Enhanced: [3]int{5, 1, 1}, Text: "No such user here"})
	if len(e.mail(alice)) != 1 || len(e.mail(bob)) != 0 {
		t.Error("wrong copies stored")
	}

	// Every recipient refused: the conversation ends at RCPT.
	fm2 := &fakeMilter{rcpt: func(string) (gomilter.Response, error) { return gomilter.RespTempFail, nil }}
	addr2 := fm2.start(t, allActions, 0)
	out = e.deliver([]delivery.Filter{e.filter(Options{Address: addr2})}, inbound(), testMsg, alice, bob)
	wantReply(t, rejected(t, out, alice), replyTempfail)
	wantReply(t, rejected(t, out, bob), replyTempfail)
	if r := fm2.got(); r.ended || len(r.fields) > 0 {
		t.Error("message sent after every recipient was refused")
	}
}

// Steps the milter does not want are not sent; the end of message is.
func TestProtocolOptions(t *testing.T) {
	e := newEnv(t)
	fm := &fakeMilter{body: func(m *gomilter.Modifier) (gomilter.Response, error) {
		m.AddHeader("X-Seen", "yes")
		return gomilter.RespAccept, nil
	}}
	addr := fm.start(t, allActions, gomilter.OptNoHeaders|gomilter.OptNoBody|gomilter.OptNoHelo|gomilter.OptNoConnect)
	out := e.deliver([]delivery.Filter{e.filter(Options{Address: addr})}, inbound(), testMsg, alice)
	if err := resultErr(t, out, alice); err != nil {
		t.Fatal(err)
	}
	r := fm.got()
	if len(r.fields) != 0 || len(r.body) != 0 || r.helo != "" || r.host != "" || !r.ended || r.from == "" {
		t.Errorf("milter saw %+v", r)
	}
	if got := e.mail(alice); len(got) != 1 || !strings.Contains(got[0].Body, "X-Seen: yes") {
		t.Errorf("stored %+v", got)
	}
}

// A big body reaches the milter whole, in chunks the protocol allows.
func TestLargeBody(t *testing.T) {
	e := newEnv(t)
	fm := &fakeMilter{}
	addr := fm.start(t, allActions, 0)
	body := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n", 30000) // 2.2 MB
	out := e.deliver([]delivery.Filter{e.filter(Options{Address: addr})}, inbound(), "Subject: big\r\n\r\n"+body, alice)
	if err := resultErr(t, out, alice); err != nil {
		t.Fatal(err)
	}
	if r := fm.got(); string(r.body) != body {
		t.Errorf("milter got %d body bytes, want %d", len(r.body), len(body))
	}
}

// Which sources go to the milter: port 25 always, submission when
// configured, the queue never.
func TestSources(t *testing.T) {
	tests := []struct {
		source     delivery.Source
		submission bool
		asked      bool
	}{
		{delivery.SourceSMTP, false, true},
		{delivery.SourceSubmission, false, false},
		{delivery.SourceSubmissions, false, false},
		{delivery.SourceSubmission, true, true},
		{delivery.SourceSubmissions, true, true},
		{delivery.SourceQueue, true, false},
	}
	for _, tc := range tests {
		t.Run(string(tc.source), func(t *testing.T) {
			e := newEnv(t)
			fm := &fakeMilter{body: respond(gomilter.RespReject)}
			addr := fm.start(t, allActions, 0)
			envl := inbound()
			envl.Source = tc.source
			envl.Client.User = "alice@a.test"
			out := e.deliver([]delivery.Filter{e.filter(Options{Address: addr, Submission: tc.submission})}, envl, testMsg, alice)
			err := resultErr(t, out, alice)
			if asked := err != nil; asked != tc.asked {
				t.Fatalf("asked = %v (%v), want %v", asked, err, tc.asked)
			}
			if tc.asked && tc.source != delivery.SourceSMTP && fm.got().macros["{auth_authen}"] != "alice@a.test" {
				t.Errorf("macros %v lack {auth_authen}", fm.got().macros)
			}
		})
	}
}

// A milter that is down, hangs, or talks garbage gets the on_error action,
// within the timeout.
func TestFailures(t *testing.T) {
	down := closedPort(t)
	hang := rawServer(t, func(c net.Conn) { bytesDrain(c) })
	garbage := rawServer(t, func(c net.Conn) {
		buf := make([]byte, 64)
		c.Read(buf)
		c.Write([]byte("\x00\x00\x00\x0dGARBAGE here!\x00\x00\x00\x05xyz"))
		bytesDrain(c)
	})
	huge := rawServer(t, func(c net.Conn) {
		c.Write([]byte("\xff\xff\xff\xff"))
		bytesDrain(c)
	})
	// A milter that negotiates, then sends progress packets for ever.
	progress := rawServer(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		c.Read(buf)
		c.Write([]byte("\x00\x00\x00\x0dO\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x00\x00"))
		for {
			if _, err := c.Write([]byte("\x00\x00\x00\x01p")); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	for _, tc := range []struct{ name, addr string }{
		{"down", down}, {"hang", hang}, {"garbage", garbage}, {"huge packet", huge}, {"endless progress", progress},
	} {
		for _, onErr := range []OnError{"", OnErrorTempfail, OnErrorAccept} {
			t.Run(tc.name+"/"+string(onErr), func(t *testing.T) {
				e := newEnv(t)
				f := e.filter(Options{Address: tc.addr, Timeout: 300 * time.Millisecond, OnError: onErr})
				out := e.deliver([]delivery.Filter{f}, inbound(), testMsg, alice)
				if onErr == OnErrorAccept {
					if err := resultErr(t, out, alice); err != nil {
						t.Fatal(err)
					}
					if len(e.mail(alice)) != 1 {
						t.Error("not stored")
					}
				} else {
					wantReply(t, rejected(t, out, alice), replyFailed)
				}
				if !strings.Contains(e.logs.String(), "milter failed") {
					t.Error("failure not logged")
				}
			})
		}
	}
}

// The session's context ending cuts a hung milter at once, and the
// pipeline fails the message temporarily.
func TestContextCancel(t *testing.T) {
	hang := rawServer(t, func(c net.Conn) { bytesDrain(c) })
	e := newEnv(t)
	f := e.filter(Options{Address: hang, Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	p, err := delivery.New(delivery.Options{Directory: directory{alice: {Local: []string{alice}}}, Store: delivery.MailStore(e.store), Filters: []delivery.Filter{f}})
	if err != nil {
		t.Fatal(err)
	}
	out := p.Deliver(ctx, &delivery.Request{Envelope: inbound(), Rcpts: []string{alice}, Body: readerat.String(testMsg)})
	if err := resultErr(t, out, alice); !errors.Is(err, delivery.ErrFilter) || !errors.Is(err, context.Canceled) {
		t.Fatalf("result %v, want a failed filter for a cancelled context", err)
	}
}

func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "inet:" + addr
}

// rawServer serves each connection with fn on a loopback port.
func rawServer(t *testing.T, fn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	conns := make(chan net.Conn, 100)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() { defer c.Close(); fn(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return "inet:" + ln.Addr().String()
}

// bytesDrain reads until the peer closes.
func bytesDrain(c net.Conn) {
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// TestSeesEarlierFiltersFields: the fields an earlier filter added for
// every recipient (our Authentication-Results) reach the milter on top of
// the message's own, and the body still starts where it does.
func TestSeesEarlierFiltersFields(t *testing.T) {
	e := newEnv(t)
	fm := &fakeMilter{}
	f := e.filter(Options{Address: fm.start(t, allActions, 0)})
	ar := addField{"Authentication-Results", "mx.a.test;\r\n\tdmarc=pass header.from=remote.test"}
	out := e.deliver([]delivery.Filter{ar, f}, inbound(), testMsg, "alice@a.test")
	if err := resultErr(t, out, alice); err != nil {
		t.Fatal(err)
	}
	r := fm.got()
	if len(r.fields) < 2 || r.fields[0] != [2]string{"Authentication-Results", "mx.a.test;\n\tdmarc=pass header.from=remote.test"} || r.fields[1][0] != "Received" {
		t.Errorf("fields = %q", r.fields)
	}
	if string(r.body) != "Hello.\r\n.dot line\r\n" {
		t.Errorf("body = %q", r.body)
	}
}

// addField adds one field for every recipient.
type addField struct{ name, value string }

func (addField) Name() string { return "add" }
func (a addField) Check(context.Context, *delivery.Message) (delivery.Decision, error) {
	return delivery.Decision{All: delivery.Verdict{Headers: []delivery.Field{{Name: a.name, Value: a.value}}}}, nil
}
