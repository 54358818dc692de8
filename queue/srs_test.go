package queue

import (
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/srs"
)

// Mail relayed for a foreign sender leaves with an SRS sender; local
// senders and the null sender do not; the stored sender is kept, so our
// own DSN goes to the original sender.
func TestSRSForwarding(t *testing.T) {
	remote := newFakeRemote(t)
	var rw *srs.Rewriter
	e := newEnv(t, remote, func(o *Options) {
		var err error
		rw, err = srs.New(srs.Options{Domain: o.Hostname, Secret: []byte("0123456789abcdef0123456789abcdef"), Now: o.Now})
		if err != nil {
			t.Fatal(err)
		}
		o.SRS = rw
	})
	e.enqueue("sender@c.test", "bob@b.test")
	e.enqueue("alice@a.test", "carol@b.test")
	e.enqueue("", "dave@b.test")
	waitFor(t, "three deliveries", func() bool {
		return remote.count("bob@b.test")+remote.count("carol@b.test")+remote.count("dave@b.test") == 3
	})
	for _, m := range remote.messages() {
		switch m.rcpts[0] {
		case "bob@b.test":
			if !strings.HasPrefix(m.from, "SRS0=") || !strings.HasSuffix(m.from, "=c.test=sender@mail.a.test") {
				t.Errorf("forwarded with MAIL FROM %q", m.from)
			}
			if back, err := rw.Reverse(m.from); err != nil || back != "sender@c.test" {
				t.Errorf("Reverse(%q) = %q, %v", m.from, back, err)
			}
		case "carol@b.test":
			if m.from != "alice@a.test" {
				t.Errorf("local sender rewritten: %q", m.from)
			}
		case "dave@b.test":
			if m.from != "" {
				t.Errorf("null sender rewritten: %q", m.from)
			}
		}
	}
}

func TestSRSOwnBounceGoesToOriginalSender(t *testing.T) {
	remote := newFakeRemote(t)
	e := newEnv(t, remote, func(o *Options) {
		rw, err := srs.New(srs.Options{Domain: o.Hostname, Secret: []byte("0123456789abcdef0123456789abcdef"), Now: o.Now})
		if err != nil {
			t.Fatal(err)
		}
		o.SRS = rw
	})
	e.dns.Add("c.test. MX 10 mx.b.test.")
	remote.script("gone@b.test", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
	e.enqueue("sender@c.test", "gone@b.test")
	waitFor(t, "the DSN at c.test", func() bool { return remote.count("sender@c.test") == 1 })
	for _, m := range remote.messages() {
		if m.rcpts[0] == "sender@c.test" && m.from != "" {
			t.Errorf("DSN sent with MAIL FROM %q", m.from)
		}
	}
}
