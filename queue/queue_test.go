package queue

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/certs/certstest"
	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/smtpclient"
)

func TestDeliver(t *testing.T) {
	remote := newFakeRemote(t)
	e := newEnv(t, remote)
	id := e.enqueue("alice@a.test", "bob@b.test")
	waitFor(t, "delivery", func() bool { return remote.count("bob@b.test") == 1 })
	waitFor(t, "message leaves the queue", func() bool { return e.gone(id) })
	m := remote.messages()[0]
	if m.from != "alice@a.test" || m.helo != "mail.a.test" {
		t.Errorf("from %q helo %q", m.from, m.helo)
	}
	if !bytes.Equal(m.body, []byte(testBody)) {
		t.Errorf("body changed:\n%q\nwant\n%q", m.body, testBody)
	}
	if m.opts.Size != int64(len(testBody)) {
		t.Errorf("SIZE = %d, want %d", m.opts.Size, len(testBody))
	}
}

func TestMXOrderAndFallback(t *testing.T) {
	tests := []struct {
		name      string
		records   []string
		wantDials []string // hosts in order; port appended
	}{
		{
			name:      "lowest preference first",
			records:   []string{"c.test. MX 20 mx2.c.test.", "c.test. MX 10 mx1.c.test.", "mx1.c.test. A 127.0.0.1", "mx2.c.test. A 127.0.0.3"},
			wantDials: []string{"127.0.0.1"},
		},
		{
			name:      "next MX when the first refuses connections",
			records:   []string{"c.test. MX 10 mx1.c.test.", "c.test. MX 20 mx2.c.test.", "mx1.c.test. A 127.0.0.2", "mx2.c.test. A 127.0.0.1"},
			wantDials: []string{"127.0.0.2", "127.0.0.1"},
		},
		{
			name:      "MX host without address is skipped",
			records:   []string{"c.test. MX 10 gone.c.test.", "c.test. MX 20 mx2.c.test.", "mx2.c.test. A 127.0.0.1"},
			wantDials: []string{"127.0.0.1"},
		},
		{
			name:      "only MX hosts preferred over ourselves",
			records:   []string{"c.test. MX 20 mail.a.test.", "c.test. MX 10 mx1.c.test.", "c.test. MX 30 mx3.c.test.", "mx1.c.test. A 127.0.0.1", "mx3.c.test. A 127.0.0.3", "mail.a.test. A 127.0.0.4"},
			wantDials: []string{"127.0.0.1"},
		},
		{
			name:      "no MX: the domain's own address",
			records:   []string{"c.test. A 127.0.0.1"},
			wantDials: []string{"127.0.0.1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			remote := newFakeRemote(t)
			e := newEnv(t, remote)
			e.dns.Add(tc.records...)
			e.enqueue("alice@a.test", "carol@c.test")
			waitFor(t, "delivery", func() bool { return remote.count("carol@c.test") == 1 })
			var want []string
			for _, h := range tc.wantDials {
				want = append(want, h+":"+e.port())
			}
			if got := e.dials(); !slices.Equal(got, want) {
				t.Errorf("dialed %v, want %v", got, want)
			}
		})
	}
}

func TestPermanentWithoutConnecting(t *testing.T) {
	tests := []struct {
		name, records, rcpt, status string
	}{
		{name: "null MX", records: "n.test. MX 0 .", rcpt: "x@n.test", status: "5.1.10"},
		{name: "no such domain", rcpt: "x@nx.test", status: "5.1.2"},
		{name: "no MX and no address", records: "t.test. TXT \"v=spf1 -all\"", rcpt: "x@t.test", status: "5.1.2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			remote := newFakeRemote(t)
			e := newEnv(t, remote)
			if tc.records != "" {
				e.dns.Add(tc.records)
			}
			id := e.enqueue("alice@a.test", tc.rcpt)
			waitFor(t, "DSN", func() bool { return len(e.inbox("alice@a.test")) == 1 })
			dsn := string(e.inbox("alice@a.test")[0])
			if !strings.Contains(dsn, "Status: "+tc.status) || !strings.Contains(dsn, "Final-Recipient: rfc822; "+tc.rcpt) {
				t.Errorf("DSN lacks status %s for %s:\n%s", tc.status, tc.rcpt, dsn)
			}
			if len(e.dials()) != 0 {
				t.Errorf("dialed %v", e.dials())
			}
			waitFor(t, "message leaves the queue", func() bool { return e.gone(id) })
		})
	}
}

func TestMXLoopsBackToUs(t *testing.T) {
	remote := newFakeRemote(t)
	e := newEnv(t, remote)
	e.dns.Add("c.test. MX 10 mail.a.test.", "c.test. MX 20 mx2.c.test.", "mx2.c.test. A 127.0.0.1")
	id := e.enqueue("alice@a.test", "x@c.test")
	waitFor(t, "attempt", func() bool { _, r := e.rcptState(id, "x@c.test"); return r != "" })
	if st, r := e.rcptState(id, "x@c.test"); st != StatePending || !strings.HasPrefix(r, "451 4.4.6") {
		t.Errorf("state %s reply %q, want pending with 4.4.6", st, r)
	}
	if len(e.dials()) != 0 {
		t.Errorf("dialed %v", e.dials())
	}
}

func TestRetryThenDeliveredOnce(t *testing.T) {
	remote := newFakeRemote(t)
	remote.script("bob@b.test", smtpErr(451, smtp.EnhancedCode{4, 7, 1}, "greylisted, try later"), nil)
	e := newEnv(t, remote)
	id := e.enqueue("alice@a.test", "bob@b.test")
	waitFor(t, "first attempt", func() bool {
		_, reply := e.rcptState(id, "bob@b.test")
		return strings.HasPrefix(reply, "451 4.7.1")
	})
	m, _ := e.q.Get(context.Background(), id)
	r := m.Recipients[0]
	if r.State != StatePending || r.Attempts != 1 {
		t.Fatalf("after 451: %+v", r)
	}
	if d := r.NextAttempt.Sub(e.clock.Now()); d < 4*time.Minute || d > 6*time.Minute {
		t.Errorf("next attempt in %s, want about 5m", d)
	}
	// Nothing happens before the backoff.
	e.advance(time.Minute)
	time.Sleep(100 * time.Millisecond)
	if remote.count("bob@b.test") != 0 || len(e.dials()) != 1 {
		t.Fatalf("retried early: %d dials", len(e.dials()))
	}
	e.advance(5 * time.Minute)
	waitFor(t, "delivery after retry", func() bool { return remote.count("bob@b.test") == 1 })
	waitFor(t, "message leaves the queue", func() bool { return e.gone(id) })
	e.advance(5 * time.Hour)
	time.Sleep(100 * time.Millisecond)
	if n := remote.count("bob@b.test"); n != 1 {
		t.Errorf("delivered %d times", n)
	}
	if n := len(e.inbox("alice@a.test")); n != 0 {
		t.Errorf("%d DSNs", n)
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute, 160 * time.Minute, 240 * time.Minute, 240 * time.Minute}
	for i, w := range want {
		for range 20 {
			got := backoff(i + 1)
			if got < w*9/10 || got > w*11/10 {
				t.Errorf("backoff(%d) = %s, want %s ±10%%", i+1, got, w)
			}
		}
	}
}

func TestPerRecipientResultsAndDSN(t *testing.T) {
	remote := newFakeRemote(t)
	remote.script("nobody@b.test", smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "no such user here"))
	e := newEnv(t, remote)
	id := e.enqueue("alice@a.test", "bob@b.test", "nobody@b.test")
	waitFor(t, "DSN", func() bool { return len(e.inbox("alice@a.test")) == 1 })
	if remote.count("bob@b.test") != 1 || remote.count("nobody@b.test") != 0 {
		t.Errorf("remote got %+v", remote.messages())
	}
	dsn := string(e.inbox("alice@a.test")[0])
	for _, want := range []string{
		"Content-Type: multipart/report; report-type=delivery-status;",
		"Content-Type: message/delivery-status",
		"Final-Recipient: rfc822; nobody@b.test",
		"Action: failed",
		"Status: 5.1.1",
		"Remote-MTA: dns; mx.b.test",
		"Diagnostic-Code: smtp; 550 5.1.1 no such user here",
		"Content-Type: text/rfc822-headers",
		"Subject: hello",
	} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q", want)
		}
	}
	if strings.Contains(dsn, "Final-Recipient: rfc822; bob@b.test") {
		t.Error("DSN mentions the delivered recipient")
	}
	waitFor(t, "message leaves the queue", func() bool { return e.gone(id) })
}

func TestRemoteSenderGetsQueuedDSN(t *testing.T) {
	remote := newFakeRemote(t)
	remote.script("nobody@b.test", smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "no such user"))
	e := newEnv(t, remote)
	e.enqueue("zed@b.test", "nobody@b.test")
	// The DSN goes to zed@b.test with the null sender, through the queue.
	waitFor(t, "DSN delivered remotely", func() bool { return remote.count("zed@b.test") == 1 })
	for _, m := range remote.messages() {
		if slices.Contains(m.rcpts, "zed@b.test") && m.from != "" {
			t.Errorf("DSN sent with sender %q, want null", m.from)
		}
	}
}

func TestNullSenderNeverBounced(t *testing.T) {
	remote := newFakeRemote(t)
	remote.script("nobody@b.test", smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "no such user"))
	e := newEnv(t, remote)
	id := e.enqueue("", "nobody@b.test")
	waitFor(t, "message leaves the queue", func() bool { return e.gone(id) })
	time.Sleep(100 * time.Millisecond)
	msgs, err := e.q.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 0 {
		t.Errorf("queue holds %d messages (a bounce of a bounce?)", len(msgs))
	}
	if len(remote.messages()) != 0 || len(e.inbox("alice@a.test")) != 0 {
		t.Error("something was sent")
	}
}

func TestExpiryAndDelayWarning(t *testing.T) {
	remote := newFakeRemote(t)
	remote.script("bob@b.test", smtpErr(421, smtp.EnhancedCode{4, 3, 2}, "system not accepting mail"))
	e := newEnv(t, remote)
	id := e.enqueue("alice@a.test", "bob@b.test")
	waitFor(t, "first attempt", func() bool { _, r := e.rcptState(id, "bob@b.test"); return r != "" })
	// After 4 hours: a "delayed" DSN, the message stays.
	e.advance(4*time.Hour + time.Minute)
	waitFor(t, "delay DSN", func() bool { return len(e.inbox("alice@a.test")) == 1 })
	warn := string(e.inbox("alice@a.test")[0])
	if !strings.Contains(warn, "Action: delayed") || !strings.Contains(warn, "Will-Retry-Until: Fri, 27 Nov 2026 06:00:00 +0000") {
		t.Errorf("delay DSN:\n%s", warn)
	}
	if st, _ := e.rcptState(id, "bob@b.test"); st != StatePending {
		t.Fatalf("state after warning = %q", st)
	}
	// Past expiry: the next temporary failure is final.
	e.advance(5 * 24 * time.Hour)
	waitFor(t, "expiry DSN", func() bool { return len(e.inbox("alice@a.test")) == 2 })
	dsn := string(e.inbox("alice@a.test")[1])
	for _, want := range []string{"Action: failed", "Status: 4.4.7", "Diagnostic-Code: smtp; 421 4.3.2 system not accepting mail"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("expiry DSN lacks %q:\n%s", want, dsn)
		}
	}
	waitFor(t, "message leaves the queue", func() bool { return e.gone(id) })
	if n := len(e.inbox("alice@a.test")); n != 2 {
		t.Errorf("%d DSNs, want 2", n)
	}
}

func TestRestartDoesNotResendAcknowledged(t *testing.T) {
	remote := newFakeRemote(t)
	remote.script("carol@b.test", smtpErr(452, smtp.EnhancedCode{4, 2, 2}, "mailbox full"), nil)
	e := newEnv(t, remote)
	id := e.enqueue("alice@a.test", "bob@b.test", "carol@b.test")
	waitFor(t, "bob delivered", func() bool { st, _ := e.rcptState(id, "bob@b.test"); return st == StateDelivered })
	waitFor(t, "carol deferred", func() bool { _, r := e.rcptState(id, "carol@b.test"); return strings.HasPrefix(r, "452") })
	// Restart: a new Queue on the same directory.
	e.stop()
	e.open()
	m, err := e.q.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("message lost across restart: %v", err)
	}
	if len(m.Recipients) != 2 {
		t.Fatalf("recipients: %+v", m.Recipients)
	}
	e.advance(6 * time.Minute)
	waitFor(t, "carol delivered", func() bool { return remote.count("carol@b.test") == 1 })
	waitFor(t, "message leaves the queue", func() bool { return e.gone(id) })
	if n := remote.count("bob@b.test"); n != 1 {
		t.Errorf("bob got the message %d times", n)
	}
}

func TestRestartBeforeFirstAttempt(t *testing.T) {
	remote := newFakeRemote(t)
	e, q := acceptOnly(t, remote)
	id, err := q.Enqueue(context.Background(), "alice@a.test", []string{"bob@b.test"}, strings.NewReader(testBody))
	if err != nil {
		t.Fatal(err)
	}
	// An orphan spool file (an Enqueue that crashed before its commit)
	// and a leftover in tmp/ are cleaned up at open.
	orphan := filepath.Join(e.dir, "queue", "0123456789abcdef")
	os.WriteFile(orphan, []byte("x"), 0o600)
	os.WriteFile(filepath.Join(e.dir, "queue", "tmp", "fedcba9876543210"), []byte("x"), 0o600)
	q.Close()
	e.open()
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Error("orphan spool file kept")
	}
	waitFor(t, "delivery after restart", func() bool { return remote.count("bob@b.test") == 1 })
	waitFor(t, "message leaves the queue", func() bool { return e.gone(id) })
}

func TestShutdownLeavesInterruptedQueued(t *testing.T) {
	remote := newFakeRemote(t)
	remote.stall = make(chan struct{})
	defer close(remote.stall)
	e := newEnv(t, remote)
	id := e.enqueue("alice@a.test", "bob@b.test")
	<-remote.inData
	before, _ := e.q.Get(context.Background(), id)
	e.stop()
	// Opened, not started: a started queue would try the message again
	// at once (it is due) and count that attempt.
	q, err := Open(context.Background(), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	m, err := q.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Recipients[0]
	if r.State != StatePending || r.Attempts != 0 || r.NextAttempt.After(e.clock.Now()) {
		t.Errorf("after interrupted attempt: %+v (before: %+v)", r, before.Recipients[0])
	}
}

func TestDKIMSignatureVerifies(t *testing.T) {
	remote := newFakeRemote(t)
	e := newEnv(t, remote)
	ctx := context.Background()
	for _, algo := range []string{dkim.AlgorithmEd25519, dkim.AlgorithmRSA} {
		k, err := e.q.DKIM().Generate(ctx, "a.test", "", algo)
		if err != nil {
			t.Fatal(err)
		}
		e.dns.AddTXT(k.TXTName(), k.TXTValue())
	}
	if _, err := e.q.DKIM().Generate(ctx, "a.test", "ed202611", dkim.AlgorithmEd25519); !errors.Is(err, dkim.ErrExists) {
		t.Errorf("duplicate selector: %v", err)
	}
	e.enqueue("alice@a.test", "bob@b.test")
	waitFor(t, "delivery", func() bool { return remote.count("bob@b.test") == 1 })
	body := remote.messages()[0].body
	res := e.opts.Resolver.(interface {
		LookupTXT(context.Context, string) ([]string, error)
	})
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(body), &msgauth.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return res.LookupTXT(ctx, name) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 {
		t.Fatalf("%d signatures, want 2:\n%s", len(vs), body)
	}
	for _, v := range vs {
		if v.Err != nil || v.Domain != "a.test" {
			t.Errorf("signature %s: %v", v.Domain, v.Err)
		}
		if n := strings.Count(strings.ToLower(strings.Join(v.HeaderKeys, ":")), "from"); n != 2 {
			t.Errorf("From signed %d times, want 2 (oversigned)", n)
		}
	}
	// A second From added in transit breaks the signature.
	tampered := append([]byte("From: mallory@evil.test\r\n"), body...)
	vs, _ = msgauth.VerifyWithOptions(bytes.NewReader(tampered), &msgauth.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return res.LookupTXT(ctx, name) },
	})
	for _, v := range vs {
		if v.Err == nil {
			t.Error("signature still valid with an added From")
		}
	}
}

func TestSTARTTLS(t *testing.T) {
	remote := newFakeRemote(t, func(s *smtp.Server) { s.TLSConfig = certstest.Default().ServerConfig("mx.b.test") })
	e := newEnv(t, remote)
	e.enqueue("alice@a.test", "bob@b.test")
	waitFor(t, "delivery", func() bool { return remote.count("bob@b.test") == 1 })
	if !remote.messages()[0].tls {
		t.Error("delivered without TLS although STARTTLS was offered")
	}
}

func TestSTARTTLSFailureNoPlaintextOnSameConnection(t *testing.T) {
	serverTLS := certstest.Default().ServerConfig("mx.b.test")
	serverTLS.MaxVersion = tls.VersionTLS12
	remote := newFakeRemote(t, func(s *smtp.Server) { s.TLSConfig = serverTLS })
	e := newEnv(t, remote, func(o *Options) {
		o.TLS = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	})
	id := e.enqueue("alice@a.test", "bob@b.test")
	waitFor(t, "first attempt", func() bool { _, r := e.rcptState(id, "bob@b.test"); return r != "" })
	if _, r := e.rcptState(id, "bob@b.test"); !strings.HasPrefix(r, "451 4.7.0") {
		t.Errorf("reply after handshake failure: %q", r)
	}
	remote.mu.Lock()
	mails := remote.mails
	remote.mu.Unlock()
	if mails != 0 || remote.count("bob@b.test") != 0 {
		t.Fatalf("went on in plaintext after a failed handshake (%d MAIL)", mails)
	}
	// The retry decision: the next attempt talks to that host without TLS.
	e.advance(6 * time.Minute)
	waitFor(t, "delivery on retry", func() bool { return remote.count("bob@b.test") == 1 })
	if remote.messages()[0].tls {
		t.Error("expected plaintext on the retry")
	}
}

func TestRemoteLimits(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*smtp.Server)
		rcpt   string
		body   string
		status string
	}{
		{name: "SIZE", cfg: func(s *smtp.Server) { s.MaxMessageBytes = 100 }, rcpt: "bob@b.test", body: testBody + strings.Repeat("x", 200) + "\r\n", status: "5.3.4"},
		{name: "SMTPUTF8", rcpt: "bø@b.test", body: testBody, status: "5.6.7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cfg []func(*smtp.Server)
			if tc.cfg != nil {
				cfg = append(cfg, tc.cfg)
			}
			remote := newFakeRemote(t, cfg...)
			e := newEnv(t, remote)
			if _, err := e.q.Enqueue(context.Background(), "alice@a.test", []string{tc.rcpt}, strings.NewReader(tc.body)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "DSN", func() bool { return len(e.inbox("alice@a.test")) == 1 })
			if dsn := string(e.inbox("alice@a.test")[0]); !strings.Contains(dsn, "Status: "+tc.status) {
				t.Errorf("DSN lacks %s:\n%s", tc.status, dsn)
			}
			if remote.mails != 0 {
				t.Error("MAIL sent anyway")
			}
		})
	}
}

func TestSMTPUTF8AndEightBit(t *testing.T) {
	remote := newFakeRemote(t, func(s *smtp.Server) { s.EnableSMTPUTF8 = true })
	e := newEnv(t, remote)
	body := "From: alice@a.test\r\nSubject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n"
	if _, err := e.q.Enqueue(context.Background(), "alice@a.test", []string{"bø@b.test"}, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", func() bool { return remote.count("bø@b.test") == 1 })
	m := remote.messages()[0]
	if !m.opts.UTF8 || m.opts.Body != smtp.Body8BitMIME {
		t.Errorf("MAIL options %+v, want SMTPUTF8 and BODY=8BITMIME", m.opts)
	}
}

func TestManyRecipientsPipelined(t *testing.T) {
	remote := newFakeRemote(t)
	e := newEnv(t, remote)
	var rcpts []string
	for i := range 150 {
		rcpts = append(rcpts, "user"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+"-"+time.Duration(i).String()+"@b.test")
	}
	id, err := e.q.Enqueue(context.Background(), "alice@a.test", rcpts, strings.NewReader(testBody))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "message leaves the queue", func() bool { return e.gone(id) })
	n := 0
	for _, m := range remote.messages() {
		n += len(m.rcpts)
		if len(m.rcpts) > smtpclient.MaxRcptsPerTransaction {
			t.Errorf("%d recipients in one transaction", len(m.rcpts))
		}
	}
	if n != 150 || len(e.dials()) != 1 {
		t.Errorf("%d recipients delivered over %d connections", n, len(e.dials()))
	}
}

func TestEnqueueValidation(t *testing.T) {
	remote := newFakeRemote(t)
	e := newEnv(t, remote, func(o *Options) { o.MaxMessageSize = 1000 })
	ctx := context.Background()
	tests := []struct {
		name  string
		from  string
		rcpts []string
		body  string
		want  error
	}{
		{name: "no recipients", from: "a@a.test", body: "x", want: ErrNoRcpts},
		{name: "bad recipient", from: "a@a.test", rcpts: []string{"nobody"}, body: "x", want: ErrBadAddress},
		{name: "bad sender", from: "a@", rcpts: []string{"b@b.test"}, body: "x", want: ErrBadAddress},
		{name: "too big", from: "a@a.test", rcpts: []string{"b@b.test"}, body: strings.Repeat("x", 2000), want: ErrTooBig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.q.Enqueue(ctx, tc.from, tc.rcpts, strings.NewReader(tc.body)); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	entries, _ := os.ReadDir(filepath.Join(e.dir, "queue", "tmp"))
	if len(entries) != 0 {
		t.Errorf("tmp/ not cleaned: %d files", len(entries))
	}
}

func TestBareLFBecomesCRLF(t *testing.T) {
	remote := newFakeRemote(t)
	e := newEnv(t, remote)
	e.q.Enqueue(context.Background(), "alice@a.test", []string{"bob@b.test"}, strings.NewReader("Subject: x\n\nline\nlast"))
	waitFor(t, "delivery", func() bool { return remote.count("bob@b.test") == 1 })
	if got := string(remote.messages()[0].body); got != "Subject: x\r\n\r\nline\r\nlast\r\n" {
		t.Errorf("body %q", got)
	}
}

func TestAdmin(t *testing.T) {
	remote := newFakeRemote(t)
	remote.script("bob@b.test", smtpErr(451, smtp.EnhancedCode{4, 0, 0}, "later"), nil)
	e := newEnv(t, remote)
	ctx := context.Background()
	id1 := e.enqueue("alice@a.test", "bob@b.test")
	waitFor(t, "first attempt", func() bool { _, r := e.rcptState(id1, "bob@b.test"); return r != "" })
	// SERVFAIL: stays queued. Set before the Enqueue, or an attempt
	// made first would find no domain and bounce the message away.
	e.dns.SetRcode("nx2.test", 2)
	id2, _ := e.q.Enqueue(ctx, "alice@a.test", []string{"x@nx2.test"}, strings.NewReader(testBody))
	msgs, err := e.q.List(ctx)
	if err != nil || len(msgs) < 1 {
		t.Fatalf("list: %v %v", msgs, err)
	}
	if _, err := e.q.Get(ctx, "0000000000000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get missing: %v", err)
	}
	if _, err := e.q.Retry(ctx, "0000000000000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("retry missing: %v", err)
	}
	// Retry makes it due now, without moving the clock.
	if n, err := e.q.Retry(ctx, id1); err != nil || n != 1 {
		t.Fatalf("retry: %d %v", n, err)
	}
	waitFor(t, "delivery after admin retry", func() bool { return remote.count("bob@b.test") == 1 })
	waitFor(t, "id2 attempted", func() bool { _, r := e.rcptState(id2, "x@nx2.test"); return r != "" })
	if err := e.q.Remove(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if !e.gone(id2) {
		t.Error("removed message still there")
	}
	if err := e.q.Remove(ctx, id2); !errors.Is(err, ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}
}

func TestParseID(t *testing.T) {
	for _, s := range []string{"0123456789abcdef", " 0123456789ABCDEF\n"} {
		if _, err := ParseID(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"", "0123", "0123456789abcdeg", "../../etc/passwd", "0123456789abcdef0"} {
		if _, err := ParseID(s); !errors.Is(err, ErrBadID) {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestDatabaseIsPrivate(t *testing.T) {
	e := newEnv(t, newFakeRemote(t))
	for _, name := range []string{"queue.sqlite", "queue.sqlite-wal"} {
		fi, err := os.Stat(filepath.Join(e.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600 (DKIM keys)", name, fi.Mode().Perm())
		}
	}
}

func TestConnectionReuse(t *testing.T) {
	remote := newFakeRemote(t)
	e, q := acceptOnly(t, remote, func(o *Options) { o.MaxPerDomain = 2 })
	const n = 30
	for i := range n {
		rcpt := "user" + strings.Repeat("x", i) + "@b.test"
		if _, err := q.Enqueue(context.Background(), "alice@a.test", []string{rcpt}, strings.NewReader(testBody)); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	e.open()
	waitFor(t, "every message delivered", func() bool { return len(remote.messages()) == n })
	waitFor(t, "empty queue", func() bool { msgs, _ := e.q.List(context.Background()); return len(msgs) == 0 })
	if d := len(e.dials()); d > 4 {
		t.Errorf("%d connections for %d messages to one domain (MaxPerDomain 2)", d, n)
	}
	seen := map[string]bool{}
	for _, m := range remote.messages() {
		if seen[m.rcpts[0]] {
			t.Errorf("%s got the message twice", m.rcpts[0])
		}
		seen[m.rcpts[0]] = true
	}
}

// TestSaveAttemptLeavesWritesDurable: the next attempt time saved before an
// attempt is committed without an fsync, and the write connection is back
// to synchronous = FULL (2) afterwards, for every other commit of the queue.
func TestSaveAttemptLeavesWritesDurable(t *testing.T) {
	remote := newFakeRemote(t)
	remote.script("bob@b.test", smtpErr(451, smtp.EnhancedCode{4, 7, 1}, "greylisted, try later"))
	e := newEnv(t, remote)
	id := e.enqueue("alice@a.test", "bob@b.test")
	waitFor(t, "first attempt", func() bool {
		_, reply := e.rcptState(id, "bob@b.test")
		return strings.HasPrefix(reply, "451 4.7.1")
	})
	m, _ := e.q.Get(context.Background(), id)
	if r := m.Recipients[0]; r.Attempts != 1 || !r.NextAttempt.After(e.clock.Now()) {
		t.Fatalf("attempt not saved: %+v", r)
	}
	var sync int
	if err := e.q.db.Write.QueryRowContext(context.Background(), `PRAGMA synchronous`).Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if sync != 2 {
		t.Fatalf("write connection left at synchronous = %d, want 2 (FULL)", sync)
	}
}

// TestIdleConnectionTakesNextMessage: messages enqueued one after the other,
// each after the previous one was delivered, go over one connection, which
// waits idle for them (connIdleTime) instead of closing.
func TestIdleConnectionTakesNextMessage(t *testing.T) {
	remote := newFakeRemote(t)
	e := newEnv(t, remote)
	const n = 5
	for i := range n {
		e.enqueue("alice@a.test", fmt.Sprintf("user%d@b.test", i))
		waitFor(t, "delivery", func() bool { return len(remote.messages()) == i+1 })
	}
	waitFor(t, "empty queue", func() bool { msgs, _ := e.q.List(context.Background()); return len(msgs) == 0 })
	if d := len(e.dials()); d != 1 {
		t.Errorf("%d connections for %d messages enqueued in a row", d, n)
	}
}
