package queue

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/dsn"
)

func TestReadHeader(t *testing.T) {
	tests := []struct {
		name, in, want string
		limit          int
	}{
		{name: "stops at blank line", in: "A: 1\r\nB: 2\r\n\r\nbody\r\n", want: "A: 1\r\nB: 2\r\n", limit: 1000},
		{name: "bare LF", in: "A: 1\nB: 2\n\nbody", want: "A: 1\r\nB: 2\r\n", limit: 1000},
		{name: "limit cuts at a line", in: "A: 1\r\nB: 22222\r\n\r\n", want: "A: 1\r\n", limit: 10},
		{name: "no body", in: "A: 1\r\n", want: "A: 1\r\n", limit: 1000},
		{name: "long line", in: "A: " + strings.Repeat("x", 5000) + "\r\n\r\n", want: "A: " + strings.Repeat("x", 5000) + "\r\n", limit: 10000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(ReadHeader(strings.NewReader(tc.in), tc.limit)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: x\r\n\r\nbody"))
	f.Add([]byte("X: y\n\n"))
	f.Add([]byte("\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := ReadHeader(bytes.NewReader(data), 4096)
		if len(h) > 4096+len(bytes.Split(data, []byte("\n"))) {
			t.Fatalf("header of %d bytes from a 4096 limit", len(h))
		}
		// Every line ends in CRLF and none is empty.
		for _, line := range strings.SplitAfter(string(h), "\r\n") {
			if line == "" {
				continue
			}
			if !strings.HasSuffix(line, "\r\n") || line == "\r\n" {
				t.Fatalf("bad line %q", line)
			}
		}
		// A DSN quoting it still parses as a message.
		r := &dsn.Report{Hostname: "mail.a.test", QueueID: "0123456789abcdef", Sender: "alice@a.test", Action: dsn.ActionFailed,
			Recipients: []dsn.Recipient{{Addr: "nobody@b.test", Reply: "550 5.1.1 no such user"}}, Header: h}
		if _, err := mail.ReadMessage(bytes.NewReader(r.Build())); err != nil {
			t.Fatalf("DSN does not parse: %v", err)
		}
	})
}

// TestBounce: a refusal reported after the message was accepted for others
// reaches a local sender at once as a DSN naming the addresses the sender
// used and the filter's status; a foreign sender's DSN is queued with the
// null sender; the null sender gets none.
func TestBounce(t *testing.T) {
	remote := newFakeRemote(t)
	// The queued DSN must still be there when the test lists the queue:
	// bob's server defers it (the fake clock holds the retry).
	remote.script("bob@b.test", smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "later"))
	e := newEnv(t, remote)
	body := "From: alice@a.test\r\nSubject: party\r\n\r\nbody\r\n"
	refused := []delivery.Result{{
		Rcpt:      "carol@a.test",
		Addresses: []string{"team@a.test"},
		Err:       &delivery.RejectError{Filter: "inbound", Reply: delivery.Reply{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: "Not wanted here"}},
	}}
	if err := e.q.Bounce(t.Context(), "alice@a.test", "abc123", strings.NewReader(body), refused); err != nil {
		t.Fatal(err)
	}
	inbox := e.inbox("alice@a.test")
	if len(inbox) != 1 {
		t.Fatalf("alice has %d messages, want the DSN", len(inbox))
	}
	for _, want := range []string{"Return-Path: <>\r\n", "Final-Recipient: rfc822; team@a.test", "Status: 5.7.1", "Not wanted here", "Subject: party"} {
		if !strings.Contains(string(inbox[0]), want) {
			t.Errorf("DSN lacks %q", want)
		}
	}

	if err := e.q.Bounce(t.Context(), "bob@b.test", "abc124", strings.NewReader(body), refused); err != nil {
		t.Fatal(err)
	}
	msgs, err := e.q.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].From != "" || !msgs[0].DSN || len(msgs[0].Recipients) != 1 || msgs[0].Recipients[0].Addr != "bob@b.test" {
		t.Errorf("queue after a foreign sender's bounce: %+v", msgs)
	}

	if err := e.q.Bounce(t.Context(), "", "abc125", strings.NewReader(body), refused); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := e.q.List(t.Context()); len(msgs) != 1 {
		t.Errorf("a DSN for the null sender was queued: %+v", msgs)
	}
}
