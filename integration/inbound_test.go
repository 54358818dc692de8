package integration

// Inbound mail checks end to end: the real binary, a loopback DNS server
// holding the senders' SPF, DKIM and DMARC records, mail sent to port 25 by
// go-smtp's client; the stored copies read from the Maildir.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
)

func TestInboundChecks(t *testing.T) {
	s := startSMTPServer(t)
	d := s.DNS
	// Mail comes from 127.0.0.1: sender.test allows it and signs; strict.test
	// allows nobody and asks for rejection; quar.test for quarantine.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d.AddTXT("sel._domainkey.sender.test.", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	d.AddTXT("sender.test.", "v=spf1 ip4:127.0.0.0/8 -all")
	d.AddTXT("_dmarc.sender.test.", "v=DMARC1; p=reject")
	d.AddTXT("strict.test.", "v=spf1 -all")
	d.AddTXT("_dmarc.strict.test.", "v=DMARC1; p=reject; pct=100")
	d.AddTXT("quar.test.", "v=spf1 -all")
	d.AddTXT("_dmarc.quar.test.", "v=DMARC1; p=quarantine")
	d.Add("1.0.0.127.in-addr.arpa. PTR mx.sender.test.", "mx.sender.test. A 127.0.0.1")

	send := func(from, body string) error {
		t.Helper()
		c, err := smtp.Dial(s.Addr("smtp"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("mx.sender.test"); err != nil {
			t.Fatal(err)
		}
		return goSend(c, from, []string{"bob@example.org"}, body)
	}
	code := func(err error) string {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			return "no SMTP error: " + errStr(err)
		}
		return strconv.Itoa(se.Code) + " " + se.Message
	}

	t.Run("signed and SPF pass: one field of ours", func(t *testing.T) {
		plain := "From: Alice <alice@sender.test>\r\nTo: bob@example.org\r\nSubject: signed\r\n\r\nHello Bob.\r\n"
		var b bytes.Buffer
		if err := msgdkim.Sign(&b, strings.NewReader(plain), &msgdkim.SignOptions{Domain: "sender.test", Selector: "sel", Signer: priv}); err != nil {
			t.Fatal(err)
		}
		// A field that claims to be ours goes; the sender's own stays.
		body := "Authentication-Results: posthouse.test; dmarc=pass header.from=bank.test\r\n" + b.String()
		if err := send("alice@sender.test", body); err != nil {
			t.Fatalf("refused: %v", err)
		}
		m := string(findStored(t, s, "bob@example.org", b.String()))
		head, _, _ := strings.Cut(m, "\r\n\r\n")
		if n := strings.Count(head, "Authentication-Results:"); n != 1 {
			t.Errorf("%d Authentication-Results fields:\n%s", n, head)
		}
		for _, want := range []string{
			"Authentication-Results: posthouse.test;\r\n",
			"\tiprev=pass policy.iprev=127.0.0.1;\r\n",
			"\tspf=pass smtp.mailfrom=alice@sender.test;\r\n",
			"\tdkim=pass header.d=sender.test",
			"\tdmarc=pass header.from=sender.test policy.dmarc=reject\r\n",
		} {
			if !strings.Contains(head, want) {
				t.Errorf("stored header lacks %q:\n%s", want, head)
			}
		}
		if strings.Contains(head, "bank.test") {
			t.Errorf("forged field kept:\n%s", head)
		}
	})

	t.Run("DMARC p=reject: 550", func(t *testing.T) {
		err := send("ceo@strict.test", "From: ceo@strict.test\r\nTo: bob@example.org\r\nSubject: pay\r\n\r\nPay now.\r\n")
		if got := code(err); !strings.HasPrefix(got, "550 ") || !strings.Contains(got, "DMARC policy of strict.test") {
			t.Errorf("reply %q, want 550 naming DMARC and strict.test", got)
		}
	})

	t.Run("our own domain forged: 550", func(t *testing.T) {
		err := send("x@remote.test", "From: Boss <boss@example.org>\r\nTo: bob@example.org\r\nSubject: urgent\r\n\r\nWire money.\r\n")
		if got := code(err); !strings.HasPrefix(got, "550 ") || !strings.Contains(got, "not authorised to use the domain example.org") {
			t.Errorf("reply %q", got)
		}
	})

	t.Run("DMARC p=quarantine: Junk", func(t *testing.T) {
		body := "From: news@quar.test\r\nTo: bob@example.org\r\nSubject: offer\r\n\r\nquarantined\r\n"
		if err := send("news@quar.test", body); err != nil {
			t.Fatalf("refused: %v", err)
		}
		m := findStored(t, s, "bob@example.org", body)
		// Maildir folders are numbered: the log names the mailbox.
		if !strings.Contains(s.Log(), "msg=delivered") || !regexp.MustCompile(`msg=delivered .*rcpt=bob@example.org mailbox=Junk `).MatchString(s.Log()) {
			t.Errorf("not delivered into Junk")
		}
		if !bytes.Contains(m, []byte("dmarc=fail header.from=quar.test policy.dmarc=quarantine")) {
			t.Errorf("stored:\n%s", m)
		}
	})

	t.Run("DNS trouble: 451", func(t *testing.T) {
		d.SetRcode("_dmarc.flaky.test.", 2) // SERVFAIL
		err := send("a@flaky.test", "From: a@flaky.test\r\nTo: bob@example.org\r\nSubject: later\r\n\r\nx\r\n")
		if got := code(err); !strings.HasPrefix(got, "451 ") {
			t.Errorf("reply %q, want 451", got)
		}
	})
}

func errStr(err error) string {
	if err == nil {
		return "accepted"
	}
	return err.Error()
}
