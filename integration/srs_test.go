package integration

// Forwarding between two Posthouse instances with SRS, and the submission
// sender rule, through the real binary. The test DNS server routes a.test
// and b.test to 127.0.0.1 and c.test to 127.0.0.2; each instance's queue
// contacts every MX on one port ([queue] remote_port), so A's queue talks
// to B's port: B listens there on 127.0.0.1, the sink for c.test on
// 127.0.0.2, and B's queue talks to A's port.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/dns/dnstest"
)

// sink is the mail server of c.test: it takes everything and records it.
type sink struct {
	mu  sync.Mutex
	got []sunk
}

type sunk struct {
	from  string
	rcpts []string
	body  []byte
}

type sinkSession struct {
	s     *sink
	from  string
	rcpts []string
}

func (s *sinkSession) Reset()        { s.from, s.rcpts = "", nil }
func (s *sinkSession) Logout() error { return nil }
func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.s.mu.Lock()
	s.s.got = append(s.s.got, sunk{from: s.from, rcpts: s.rcpts, body: b})
	s.s.mu.Unlock()
	return nil
}

func (k *sink) messages() []sunk {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]sunk(nil), k.got...)
}

func startSink(t *testing.T, addr string) *sink {
	t.Helper()
	k := &sink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: k}, nil }))
	srv.Domain = "mx.c.test"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return k
}

// sendPlain sends a message over plain SMTP to port 25.
func sendPlain(t *testing.T, addr, from, to, body string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := goSend(c, from, []string{to}, body); err != nil {
		t.Fatalf("send to %s: %v", to, err)
	}
	c.Quit()
}

func TestSRSForwardingAndBounce(t *testing.T) {
	d := dnstest.NewServer(t)
	d.Add("a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.1",
		"b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1",
		"c.test. MX 10 mx.c.test.", "mx.c.test. A 127.0.0.2",
		"d.test. MX 0 .") // RFC 7505: accepts no mail, so B bounces at once
	aSMTP, bSMTP := freeTCPAddr(t), freeTCPAddr(t)
	k := startSink(t, "127.0.0.2:"+portOf(t, bSMTP))
	conf := func(host, smtpAddr, peer string) string {
		return fmt.Sprintf("hostname = %q\n[listen]\nsmtp = %q\n[dns]\nresolver = %q\n[queue]\nremote_port = %s\n",
			host, smtpAddr, d.Addr, portOf(t, peer))
	}
	a := startServer(t, conf("mx.a.test", aSMTP, bSMTP))
	b := startServer(t, conf("mx.b.test", bSMTP, aSMTP))
	a.Admin(t, "", "domain", "add", "a.test")
	a.Admin(t, "", "alias", "add", "fwd@a.test", "user@b.test")
	a.Admin(t, "", "alias", "add", "fwd2@a.test", "gone@b.test")
	b.AddUser(t, "user@b.test", "user-pw")
	b.Admin(t, "", "alias", "add", "gone@b.test", "dead@d.test")

	// 1. Forwarded: B stores it with the SRS sender A gave it.
	sendPlain(t, a.Addr("smtp"), "sender@c.test", "fwd@a.test",
		"From: Sender <sender@c.test>\r\nTo: fwd@a.test\r\nSubject: forwarded\r\n\r\nPlease forward.\r\n")
	var stored []byte
	waitUntil(t, 20*time.Second, "the forwarded message at b.test", func() bool {
		for _, m := range maildirMessages(t, b, "user@b.test") {
			if bytes.HasSuffix(m, []byte("Please forward.\r\n")) {
				stored = m
				return true
			}
		}
		return false
	})
	srs0 := regexp.MustCompile(`^Return-Path: <(SRS0=[A-Z2-7]{6}=[A-Z2-7]{2}=c\.test=sender@mx\.a\.test)>\r\n`)
	if !srs0.Match(stored) {
		t.Fatalf("forwarded copy's Return-Path is not A's SRS address:\n%s", stored)
	}

	// 2. Forwarded to an alias of B that bounces: B's DSN goes to the SRS
	// address at A, which reverses it to the original sender at c.test.
	sendPlain(t, a.Addr("smtp"), "sender@c.test", "fwd2@a.test",
		"From: Sender <sender@c.test>\r\nTo: fwd2@a.test\r\nSubject: doomed\r\n\r\nThis will bounce.\r\n")
	var dsn sunk
	waitUntil(t, 30*time.Second, "the bounce at c.test", func() bool {
		for _, m := range k.messages() {
			if len(m.rcpts) == 1 && m.rcpts[0] == "sender@c.test" {
				dsn = m
				return true
			}
		}
		return false
	})
	if dsn.from != "" {
		t.Errorf("bounce reached c.test with MAIL FROM %q, want the null sender", dsn.from)
	}
	for _, want := range []string{"multipart/report", "Final-Recipient: rfc822; dead@d.test", "Status: 5.1.10", "Subject: doomed", "Reporting-MTA: dns; mx.b.test"} {
		if !bytes.Contains(dsn.body, []byte(want)) {
			t.Errorf("bounce lacks %q:\n%s", want, dsn.body)
		}
	}
	if !strings.Contains(a.Log(), "bounce to SRS address") {
		t.Error("A's log does not show the reversal")
	}

	// 3. A forged SRS address (right shape, wrong hash) is refused at RCPT.
	c, err := smtp.Dial(a.Addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("", nil); err != nil {
		t.Fatal(err)
	}
	forged := "SRS0=AAAAAA=" + string(srs0.FindSubmatch(stored)[1][12:])
	err = c.Rcpt(forged, nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
		t.Fatalf("RCPT %s: %v, want 550 5.1.1", forged, err)
	}
}

// Submission: From must be the user's, an alias of theirs or a grant
// made with `posthouse admin user send-as`.
func TestSubmissionFromRule(t *testing.T) {
	s := startServer(t, "")
	s.AddUser(t, "alice@a.test", alicePW)
	s.AddUser(t, "bob@a.test", bobPW)
	s.Admin(t, "", "alias", "add", "sales@a.test", "alice@a.test")
	s.Admin(t, "", "domain", "add", "shared.test")

	send := func(from string) error {
		t.Helper()
		c, err := smtp.DialStartTLS(s.Addr("submission"), s.clientTLS())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Auth(sasl.NewPlainClient("", "alice@a.test", alicePW)); err != nil {
			t.Fatal(err)
		}
		return goSend(c, "alice@a.test", []string{"bob@a.test"}, "From: <"+from+">\r\nTo: bob@a.test\r\nSubject: as "+from+"\r\n\r\nhi\r\n")
	}
	expect553 := func(from string) {
		t.Helper()
		err := send(from)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 553 || !strings.Contains(se.Message, "<"+from+">") {
			t.Fatalf("From %s: %v, want 553 naming the address", from, err)
		}
	}
	for _, ok := range []string{"alice@a.test", "alice+x@a.test", "sales@a.test"} {
		if err := send(ok); err != nil {
			t.Fatalf("From %s: %v", ok, err)
		}
	}
	expect553("bob@a.test")
	expect553("helpdesk@shared.test")

	s.Admin(t, "", "user", "send-as", "add", "alice@a.test", "@shared.test")
	s.Admin(t, "", "user", "send-as", "add", "alice@a.test", "ceo@a.test")
	for _, ok := range []string{"helpdesk@shared.test", "ceo@a.test"} {
		if err := send(ok); err != nil {
			t.Fatalf("From %s after the grant: %v", ok, err)
		}
	}
	list := s.Admin(t, "", "user", "send-as", "list", "alice@a.test")
	for _, want := range []string{"alice@a.test  own", "sales@a.test  alias", "@shared.test  grant", "ceo@a.test    grant"} {
		if !strings.Contains(list, want) {
			t.Errorf("send-as list lacks %q:\n%s", want, list)
		}
	}
	if r := s.RunAdmin(t, "", "user", "send-as", "add", "alice@a.test", "ceo@a.test"); r.Code != 4 {
		t.Errorf("granting twice: exit %d, want 4", r.Code)
	}
	s.Admin(t, "", "user", "send-as", "remove", "alice@a.test", "ceo@a.test")
	if r := s.RunAdmin(t, "", "user", "send-as", "remove", "alice@a.test", "ceo@a.test"); r.Code != 3 {
		t.Errorf("removing a missing grant: exit %d, want 3", r.Code)
	}
	expect553("ceo@a.test")
	if n := len(maildirMessages(t, s, "bob@a.test")); n != 5 {
		t.Errorf("bob has %d messages, want the 5 accepted ones", n)
	}
}
