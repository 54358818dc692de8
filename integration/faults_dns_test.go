package integration

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

// TestDeadResolver: with the resolver dead (no answer), failing (SERVFAIL)
// or slow (10 s per answer), mail on port 25 whose DMARC check needs DNS
// gets 451 4.4.3 within the per-message budget, the queue defers with that
// reason in admin queue show, and both recover by themselves once DNS
// answers again.
func TestDeadResolver(t *testing.T) {
	f := startFakeReceiver(t)
	s := startServer(t, fmt.Sprintf("[queue]\nremote_port = %s\n", f.port))
	s.AddUser(t, faultUser, faultPass)
	healthy := func() {
		s.DNS.SetSilent(false)
		s.DNS.SetDelay(0)
		for i := range 3 {
			s.DNS.SetRcode(fmt.Sprintf("_dmarc.s%d.test", i), dns.RcodeSuccess)
			s.DNS.SetRcode(fmt.Sprintf("b%d.test", i), dns.RcodeSuccess)
		}
	}
	// One sender and one recipient domain per fault: the server keeps DNS
	// answers for their TTL, and a connection the queue keeps open after a
	// delivery (for a second) takes the next message to its domain without
	// a DNS lookup; each fault's lookups must reach the broken resolver.
	s.DNS.Add("b0.test. MX 10 mx.b.test.", "b1.test. MX 10 mx.b.test.", "b2.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	s.DNS.AddTXT("_dmarc.sender.test", "v=DMARC1; p=none")
	for i := range 3 {
		s.DNS.AddTXT(fmt.Sprintf("_dmarc.s%d.test", i), "v=DMARC1; p=none")
	}

	acked := map[string]bool{}
	send := func(subject, domain string) error {
		c, err := smtp.Dial(s.Addr("smtp"))
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.Hello("client.example"); err != nil {
			return err
		}
		body := strings.Replace(faultMessage(subject, 1024), "From: sender@remote.test", "From: sender@"+domain, 1)
		return goSend(c, "sender@"+domain, []string{faultUser}, body)
	}
	if err := send("dns-before", "sender.test"); err != nil {
		fatalf(t, "with DNS healthy: %v", err)
	}
	acked["dns-before"] = true

	faults := []struct {
		name     string
		breakDNS func()
	}{
		{"no answer", func() { s.DNS.SetSilent(true) }},
		{"SERVFAIL", func() {
			for i := range 3 {
				s.DNS.SetRcode(fmt.Sprintf("_dmarc.s%d.test", i), dns.RcodeServerFailure)
				s.DNS.SetRcode(fmt.Sprintf("b%d.test", i), dns.RcodeServerFailure)
			}
		}},
		{"10 s latency", func() { s.DNS.SetDelay(10 * time.Second) }},
	}
	for i, fault := range faults {
		fault.breakDNS()
		start := time.Now()
		sender := fmt.Sprintf("s%d.test", i)
		err := send(fmt.Sprintf("dns-refused-%d", i), sender)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 4, 3}) {
			fatalf(t, "%s: port 25 got %v, want 451 4.4.3", fault.name, err)
		}
		t.Logf("%s: 451 4.4.3 after %s", fault.name, time.Since(start).Round(time.Millisecond))

		// The queue defers with the reason.
		subj := fmt.Sprintf("dns-out-%d", i)
		sub, err := smtp.DialTLS(s.Addr("submissions"), s.clientTLS())
		if err != nil {
			fatalf(t, "%v", err)
		}
		if err := sub.Auth(sasl.NewPlainClient("", faultUser, faultPass)); err != nil {
			fatalf(t, "%v", err)
		}
		if err := goSend(sub, faultUser, []string{fmt.Sprintf("bob@b%d.test", i)}, "From: "+faultUser+"\r\nSubject: "+subj+"\r\n\r\nout\r\n"); err != nil {
			fatalf(t, "%v", err)
		}
		sub.Close()
		var id string
		waitUntil(t, 40*time.Second, fault.name+": the deferral in admin queue show", func() bool {
			lines := strings.Split(s.Admin(t, "", "queue", "list"), "\n")
			if len(lines) < 2 || strings.Contains(lines[0], "empty") {
				return false
			}
			id = strings.Fields(lines[1])[0]
			return strings.Contains(s.Admin(t, "", "queue", "show", id), "451 4.4.3")
		})

		healthy()
		recovered := time.Now()
		waitUntil(t, 20*time.Second, fault.name+": port 25 accepting again", func() bool { return send(fmt.Sprintf("dns-after-%d", i), sender) == nil })
		t.Logf("recovery: %s: port 25 accepted mail %s after DNS came back", fault.name, time.Since(recovered).Round(time.Millisecond))
		acked[fmt.Sprintf("dns-after-%d", i)] = true
		s.Admin(t, "", "queue", "retry", "all")
		waitUntil(t, 20*time.Second, fault.name+": queued mail delivered", func() bool { return f.count() == i+1 })
		t.Logf("recovery: %s: queued mail delivered %s after DNS came back (asked with admin queue retry; unasked, at its next backoff)", fault.name, time.Since(recovered).Round(time.Millisecond))
		// The queue keeps that connection a moment for more mail to b.test;
		// the next fault's message must need DNS, not reuse it.
		waitUntil(t, 20*time.Second, fault.name+": the queue's idle connection closed", func() bool { return f.connections() == 0 })
	}
	checkExactlyOnce(t, s, acked)
	if n := f.count(); n != len(faults) {
		errorf(t, "the remote got %d messages, want %d (each once)", n, len(faults))
	}
	s.Stop(t)
	s.Restart(t)
	checkExactlyOnce(t, s, acked)
}
