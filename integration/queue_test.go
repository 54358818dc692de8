package integration

// Outbound delivery between two Posthouse instances on loopback: the
// sender's [dns] resolver is a test DNS server (dnstest) that answers
// MX for b.test with 127.0.0.1, and its [queue] remote_port is the
// receiver's SMTP port (or a scripted fake receiver's).

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/posthouse/posthouse/dns/dnstest"
)

const (
	alicePW = "alice-queue-pw"
	bobPW   = "bob-queue-pw"
)

// relayPair starts the test DNS server and a sender (a.test, user alice)
// whose queue delivers to port remotePort on 127.0.0.1.
func startSender(t *testing.T, dnsAddr string, remotePort string) *Server {
	t.Helper()
	a := startServer(t, fmt.Sprintf("[dns]\nresolver = %q\n[queue]\nremote_port = %s\n", dnsAddr, remotePort))
	a.AddUser(t, "alice@a.test", alicePW)
	return a
}

func newTestDNS(t *testing.T) *dnstest.Server {
	d := dnstest.NewServer(t)
	d.Add("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	return d
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// submit sends body from alice through the sender's submission port.
func submit(t *testing.T, s *Server, to []string, body string) {
	t.Helper()
	c, err := smtp.DialStartTLS(s.Addr("submission"), s.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice@a.test", alicePW)); err != nil {
		t.Fatal(err)
	}
	if err := goSend(c, "alice@a.test", to, body); err != nil {
		t.Fatalf("submit: %v", err)
	}
	c.Quit()
}

// lookupTXT asks the test DNS server directly.
func lookupTXT(addr string) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
		c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, rr := range r.Answer {
			if t, ok := rr.(*dns.TXT); ok {
				out = append(out, strings.Join(t.Txt, ""))
			}
		}
		return out, nil
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestQueueRelayWithDKIM(t *testing.T) {
	d := newTestDNS(t)
	// b verifies what it receives through the same DNS server.
	b := startServer(t, fmt.Sprintf("[dns]\nresolver = %q\n", d.Addr))
	b.AddUser(t, "bob@b.test", bobPW)
	a := startSender(t, d.Addr, portOf(t, b.Addr("smtp")))
	for _, algo := range []string{"ed25519", "rsa"} {
		record := a.Admin(t, "", "dkim", "generate", "--algorithm", algo, "a.test")
		d.Add(strings.TrimSpace(record))
	}
	dnsOut := a.Admin(t, "", "dns", "a.test")
	for _, want := range []string{"IN MX 10 posthouse.test.", "v=spf1 mx -all", "_dmarc.a.test.", "k=ed25519", "k=rsa", "_submissions._tcp.a.test.", "_imaps._tcp.a.test.", "_pop3._tcp.a.test.", "autoconfig.a.test."} {
		if !strings.Contains(dnsOut, want) {
			t.Errorf("admin dns lacks %q", want)
		}
	}

	body := "From: Alice <alice@a.test>\r\nTo: Bob <bob@b.test>\r\nSubject: across\r\n\r\nHello from a.test.\r\n"
	submit(t, a, []string{"bob@b.test"}, body)
	var stored []byte
	waitUntil(t, 20*time.Second, "the message at b.test", func() bool {
		for _, m := range maildirMessages(t, b, "bob@b.test") {
			if bytes.HasSuffix(m, []byte("Hello from a.test.\r\n")) {
				stored = m
				return true
			}
		}
		return false
	})
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(stored), &dkim.VerifyOptions{LookupTXT: lookupTXT(d.Addr)})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 {
		t.Fatalf("%d DKIM signatures, want 2", len(vs))
	}
	for _, v := range vs {
		if v.Err != nil || v.Domain != "a.test" {
			t.Errorf("DKIM d=%s: %v", v.Domain, v.Err)
		}
	}
	// b's own verdict, above everything a.test sent (below Return-Path
	// and the junk filter's field).
	rest := stored[bytes.Index(stored, []byte("\r\n"))+2:]
	if bytes.HasPrefix(rest, []byte("X-Posthouse-Junk: ")) {
		rest = rest[bytes.Index(rest, []byte("\r\n"))+2:]
	}
	if n := bytes.Count(stored, []byte("dkim=pass header.d=a.test")); n != 2 || !bytes.HasPrefix(rest, []byte("Authentication-Results: ")) {
		t.Errorf("b's Authentication-Results: %d dkim=pass header.d=a.test, want 2:\n%s", n, stored)
	}
	waitUntil(t, 10*time.Second, "empty queue", func() bool {
		return strings.Contains(a.Admin(t, "", "queue", "list"), "queue is empty")
	})
}

func TestQueueBounceToLocalSender(t *testing.T) {
	d := newTestDNS(t)
	b := startServer(t, "")
	b.AddUser(t, "bob@b.test", bobPW)
	a := startSender(t, d.Addr, portOf(t, b.Addr("smtp")))
	submit(t, a, []string{"nobody@b.test"}, "From: alice@a.test\r\nTo: nobody@b.test\r\nSubject: to nobody\r\n\r\nAnyone?\r\n")
	var dsn []byte
	waitUntil(t, 20*time.Second, "a DSN in alice's INBOX", func() bool {
		for _, m := range maildirMessages(t, a, "alice@a.test") {
			if bytes.Contains(m, []byte("multipart/report")) {
				dsn = m
				return true
			}
		}
		return false
	})
	for _, want := range []string{"report-type=delivery-status", "Final-Recipient: rfc822; nobody@b.test", "Action: failed", "Status: 5.1.1", "Diagnostic-Code: smtp; 550", "Subject: to nobody"} {
		if !bytes.Contains(dsn, []byte(want)) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
}

// fakeReceiver is a scripted receiving server: replies[i] answers the i-th
// RCPT (nil accepts); after the list, every RCPT is accepted.
type fakeReceiver struct {
	mu       sync.Mutex
	replies  []*smtp.SMTPError
	rcpts    int
	received [][]byte
	stall    chan struct{} // when non-nil, DATA blocks until closed
	inData   chan struct{}
	port     string
	open     int // sessions not yet logged out
}

func startFakeReceiver(t *testing.T, replies ...*smtp.SMTPError) *fakeReceiver {
	f := &fakeReceiver{replies: replies, inData: make(chan struct{}, 8)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		f.mu.Lock()
		f.open++
		f.mu.Unlock()
		return &fakeRecvSession{f: f}, nil
	}))
	srv.Domain = "mx.b.test"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 100
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.port = portOf(t, ln.Addr().String())
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

func (f *fakeReceiver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.received)
}

// connections counts the sessions still open (the queue keeps a
// connection that delivered a moment for more mail to the domain).
func (f *fakeReceiver) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open
}

func (f *fakeReceiver) rcptCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rcpts
}

type fakeRecvSession struct{ f *fakeReceiver }

func (s *fakeRecvSession) Reset() {}
func (s *fakeRecvSession) Logout() error {
	s.f.mu.Lock()
	s.f.open--
	s.f.mu.Unlock()
	return nil
}
func (s *fakeRecvSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *fakeRecvSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	i := s.f.rcpts
	s.f.rcpts++
	if i < len(s.f.replies) && s.f.replies[i] != nil {
		return s.f.replies[i]
	}
	return nil
}

func (s *fakeRecvSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.f.mu.Lock()
	stall := s.f.stall
	s.f.mu.Unlock()
	if stall != nil {
		s.f.inData <- struct{}{}
		<-stall
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "aborted"}
	}
	s.f.mu.Lock()
	s.f.received = append(s.f.received, b)
	s.f.mu.Unlock()
	return nil
}

func TestQueueRetryAfter451(t *testing.T) {
	d := newTestDNS(t)
	f := startFakeReceiver(t, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted"})
	a := startSender(t, d.Addr, f.port)
	submit(t, a, []string{"bob@b.test"}, "From: alice@a.test\r\nSubject: grey\r\n\r\nonce\r\n")
	waitUntil(t, 20*time.Second, "the first (refused) attempt", func() bool { return f.rcptCount() >= 1 })
	waitUntil(t, 10*time.Second, "the deferral in admin queue show", func() bool {
		return strings.Contains(a.Admin(t, "", "queue", "list"), "1 message(s)")
	})
	id := strings.Fields(strings.Split(a.Admin(t, "", "queue", "list"), "\n")[1])[0]
	show := a.Admin(t, "", "queue", "show", id)
	if !strings.Contains(show, "451 4.7.1 greylisted") || !strings.Contains(show, "state:        pending") {
		t.Errorf("queue show:\n%s", show)
	}
	// The backoff is 5 minutes; ask for the retry now.
	a.Admin(t, "", "queue", "retry", id)
	waitUntil(t, 20*time.Second, "delivery after the retry", func() bool { return f.count() == 1 })
	waitUntil(t, 10*time.Second, "empty queue", func() bool {
		return strings.Contains(a.Admin(t, "", "queue", "list"), "queue is empty")
	})
	// The entry is gone, so nothing can go out again.
	if n := f.count(); n != 1 {
		t.Errorf("receiver got the message %d times, want 1", n)
	}
}

func TestQueueKill9LosesNothing(t *testing.T) {
	d := newTestDNS(t)
	f := startFakeReceiver(t)
	f.stall = make(chan struct{})
	a := startSender(t, d.Addr, f.port)
	submit(t, a, []string{"bob@b.test", "carol@b.test"}, "From: alice@a.test\r\nSubject: crash\r\n\r\nsurvive\r\n")
	select {
	case <-f.inData:
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery attempt")
	}
	// Crash in the middle of DATA.
	a.Kill()
	f.mu.Lock()
	close(f.stall)
	f.stall = nil
	f.mu.Unlock()
	a.Restart(t)
	list := a.Admin(t, "", "queue", "list")
	if !strings.Contains(list, "1 message(s)") {
		t.Fatalf("after kill -9 the queue holds:\n%s", list)
	}
	// The attempt's backoff was saved before it began; retry now.
	a.Admin(t, "", "queue", "retry", "all")
	waitUntil(t, 20*time.Second, "delivery after the restart", func() bool { return f.count() == 1 })
	waitUntil(t, 10*time.Second, "empty queue", func() bool {
		return strings.Contains(a.Admin(t, "", "queue", "list"), "queue is empty")
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.received) != 1 || !bytes.HasSuffix(f.received[0], []byte("survive\r\n")) {
		t.Errorf("receiver got %d messages: %q", len(f.received), f.received)
	}
}
