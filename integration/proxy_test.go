package integration

// PROXY protocol: listeners named in [listen] proxy_protocol take the
// client address from the load balancer's header (v1 or v2) for logs,
// Received headers, connection limits, trusted networks and LOGINDISABLED;
// sources outside proxy_networks and missing headers are refused; other
// listeners never read a header.

import (
	"bufio"
	"crypto/tls"
	binenc "encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// proxyV1 is a PROXY protocol version 1 line for a client at src.
func proxyV1(src, dst string) string {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	fam := "TCP4"
	if s.Addr().Is6() {
		fam = "TCP6"
	}
	return fmt.Sprintf("PROXY %s %s %s %d %d\r\n", fam, s.Addr(), d.Addr(), s.Port(), d.Port())
}

// proxyV2 is a binary version 2 PROXY header (TCP over IPv4) for a
// client at src, written from the specification, not a library.
func proxyV2(src, dst string) string {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	b = append(b, 0x21, 0x11) // version 2, PROXY; AF_INET, STREAM
	b = binenc.BigEndian.AppendUint16(b, 12)
	b = append(b, s.Addr().AsSlice()...)
	b = append(b, d.Addr().AsSlice()...)
	b = binenc.BigEndian.AppendUint16(b, s.Port())
	b = binenc.BigEndian.AppendUint16(b, d.Port())
	return string(b)
}

// dialFrom connects to addr from the loopback address src and sends
// header (none when "").
func dialFrom(t *testing.T, src, addr, header string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if header != "" {
		if _, err := io.WriteString(c, header); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// proxiedSMTP opens an SMTP session through a PROXY header.
func proxiedSMTP(t *testing.T, s *Server, header string) *smtp.Client {
	t.Helper()
	c := smtp.NewClient(dialFrom(t, "127.0.0.1", s.Addr("smtp"), header))
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.example"); err != nil {
		t.Fatalf("SMTP through PROXY header %q: %v", header, err)
	}
	return c
}

// proxiedIMAP opens a plain IMAP session through a PROXY header.
func proxiedIMAP(t *testing.T, s *Server, header string) *imapSession {
	t.Helper()
	c := dialFrom(t, "127.0.0.1", s.Addr("imap"), header)
	is := &imapSession{t: t, c: c, r: bufio.NewReader(c)}
	if g := is.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("IMAP greeting %q", g)
	}
	return is
}

// closedWithoutReply asserts the server closes c without sending a byte.
func closedWithoutReply(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	n, err := c.Read(make([]byte, 256))
	if n > 0 || err == nil {
		t.Fatalf("%s: server sent %d bytes, want the connection closed", what, n)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: connection still open after 15s", what)
	}
}

func waitLog(t *testing.T, s *Server, what string, match func(string) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if match(s.Log()) {
			return
		}
	}
	t.Fatalf("no log line: %s", what)
}

func TestProxyProtocol(t *testing.T) {
	// The load balancer is 127.0.0.1. [auth] trusted_networks is 10/8
	// only, so the load balancer's own address is not trusted: a client
	// forwarded from 10.x passing the greylist shows that the header's
	// address is the one checked.
	s := startServer(t, `
[listen]
proxy_protocol = ["smtp", "imap", "imaps"]
proxy_networks = ["127.0.0.1/32"]
[limits]
max_connections_per_ip = 2
[inbound]
greylist = true
[auth]
trusted_networks = ["10.0.0.0/8"]
ip_max_failures = 3
`)
	s.AddUser(t, faultUser, faultPass)
	smtpDst := "192.0.2.1:25"
	acked := map[string]bool{}

	t.Run("smtp v1 and v2: Received header and log carry the client", func(t *testing.T) {
		for _, tc := range []struct{ name, header, ip string }{
			{"proxy-v1", proxyV1("10.1.2.3:40001", smtpDst), "10.1.2.3"},
			{"proxy-v2", proxyV2("10.1.2.4:40002", smtpDst), "10.1.2.4"},
		} {
			c := proxiedSMTP(t, s, tc.header)
			if err := goSend(c, "sender@remote.test", []string{faultUser}, faultMessage(tc.name, 200)); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			acked[tc.name] = true
			c.Quit()
			// The SPF/DMARC/iprev checks ran on the client's address.
			waitLog(t, s, "inbound checks of "+tc.ip, func(l string) bool {
				for _, line := range strings.Split(l, "\n") {
					if strings.Contains(line, `msg="inbound checks"`) && strings.Contains(line, "remote="+tc.ip+" ") {
						return true
					}
				}
				return false
			})
		}
	})

	t.Run("greylist applies to the forwarded address", func(t *testing.T) {
		// 198.51.100.7 is outside trusted_networks: greylisted.
		c := proxiedSMTP(t, s, proxyV1("198.51.100.7:40003", smtpDst))
		err := goSend(c, "sender@remote.test", []string{faultUser}, faultMessage("greylisted", 200))
		smtpCode(t, "RCPT from 198.51.100.7", err, 451, smtp.EnhancedCode{4, 7, 1})
		c.Quit()
	})

	t.Run("connection limit counts the forwarded address", func(t *testing.T) {
		// Two held from 198.51.100.20 (max_connections_per_ip = 2), all
		// through the one load balancer: a third from the same client is
		// refused, one from another client is served.
		for range 2 {
			proxiedSMTP(t, s, proxyV1("198.51.100.20:1000", smtpDst))
		}
		third := dialFrom(t, "127.0.0.1", s.Addr("smtp"), proxyV2("198.51.100.20:1001", smtpDst))
		third.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(third).ReadString('\n')
		if !strings.HasPrefix(line, "421 4.7.0") {
			t.Fatalf("third connection from one forwarded client: %q, want 421 4.7.0", line)
		}
		other := proxiedSMTP(t, s, proxyV1("198.51.100.21:1000", smtpDst))
		other.Quit()
		waitLog(t, s, "refusal of 198.51.100.20", func(l string) bool {
			return strings.Contains(l, "connection refused") && strings.Contains(l, "198.51.100.20")
		})
	})

	t.Run("imap: loopback_is_secure follows the forwarded address", func(t *testing.T) {
		is := proxiedIMAP(t, s, proxyV2("203.0.113.9:5555", "192.0.2.1:143"))
		caps := strings.Join(is.ok("CAPABILITY"), " ")
		if !strings.Contains(caps, "LOGINDISABLED") {
			t.Errorf("a client forwarded from 203.0.113.9 may log in without TLS: %s", caps)
		}
		is.ok("LOGOUT")
		waitLog(t, s, "imap remote=203.0.113.9", func(l string) bool {
			for _, line := range strings.Split(l, "\n") {
				if strings.Contains(line, "proto=imap") && strings.Contains(line, "remote=203.0.113.9") {
					return true
				}
			}
			return false
		})
		lo := proxiedIMAP(t, s, proxyV1("127.0.0.5:5556", "192.0.2.1:143"))
		if caps := strings.Join(lo.ok("CAPABILITY"), " "); strings.Contains(caps, "LOGINDISABLED") {
			t.Errorf("a client forwarded from 127.0.0.5 (loopback) may not log in: %s", caps)
		}
		lo.ok("LOGIN %s %s", faultUser, faultPass)
		lo.ok("SELECT INBOX")
		var received []string
		for _, l := range lo.ok("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (RECEIVED)])") {
			received = append(received, l)
		}
		all := strings.Join(received, "\n")
		for _, ip := range []string{"10.1.2.3", "10.1.2.4"} {
			if !strings.Contains(all, "(["+ip+"])") {
				t.Errorf("no Received header from [%s]:\n%s", ip, all)
			}
		}
		if strings.Contains(all, "[127.0.0.1]") {
			t.Errorf("a Received header names the load balancer:\n%s", all)
		}
		lo.ok("LOGOUT")
	})

	t.Run("password guessing locks out the forwarded address", func(t *testing.T) {
		login := func(src, pass string) string {
			c := dialFrom(t, "127.0.0.1", s.Addr("imaps"), proxyV2(src, "192.0.2.1:993"))
			tc := tls.Client(c, s.clientTLS())
			is := &imapSession{t: t, c: tc, r: bufio.NewReader(tc)}
			is.line()
			_, done := is.cmd("LOGIN %s %s", faultUser, pass)
			tc.Close()
			return done
		}
		for i := range 3 {
			if done := login("198.51.100.30:2000", fmt.Sprintf("wrong-%d", i)); !strings.HasPrefix(done, "NO") {
				t.Fatalf("wrong password %d: %q", i, done)
			}
		}
		if done := login("198.51.100.30:2001", faultPass); strings.HasPrefix(done, "OK") {
			t.Errorf("198.51.100.30 after 3 wrong passwords (ip_max_failures = 3) logged in: %q", done)
		}
		if done := login("198.51.100.31:2000", faultPass); !strings.HasPrefix(done, "OK") {
			t.Errorf("198.51.100.31, another client behind the same load balancer, cannot log in: %q", done)
		}
	})

	t.Run("untrusted source refused", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", s.Addr("smtp"), proxyV1("10.9.9.9:1", smtpDst))
		closedWithoutReply(t, c, "PROXY header from 127.0.0.2")
		waitLog(t, s, "not in proxy_networks", func(l string) bool {
			return strings.Contains(l, "not in proxy_networks") && strings.Contains(l, "127.0.0.2:")
		})
		if strings.Contains(s.Log(), "remote=10.9.9.9") {
			t.Error("the untrusted source's header was used")
		}
	})

	t.Run("missing header closed", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.1", s.Addr("imap"), "a1 CAPABILITY\r\n")
		closedWithoutReply(t, c, "IMAP without a header")
		waitLog(t, s, "no valid PROXY header", func(l string) bool { return strings.Contains(l, "no valid PROXY header") })
	})

	t.Run("listener without proxy_protocol ignores headers", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.1", s.Addr("pop3"), "")
		r := bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if g, _ := r.ReadString('\n'); !strings.HasPrefix(g, "+OK") {
			t.Fatalf("POP3 greeting %q", g)
		}
		io.WriteString(c, proxyV1("10.7.7.7:1", "192.0.2.1:110"))
		if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "-ERR") {
			t.Fatalf("PROXY line as a POP3 command: %q, want -ERR", l)
		}
		if strings.Contains(s.Log(), "10.7.7.7") {
			t.Error("a PROXY header was honoured on a listener not configured for it")
		}
	})

	// Every acknowledged message is stored once, and the server answers
	// normally after all of the above.
	c := proxiedSMTP(t, s, proxyV2("10.1.2.5:40009", smtpDst))
	if err := goSend(c, "sender@remote.test", []string{faultUser}, faultMessage("after", 200)); err != nil {
		t.Fatal(err)
	}
	acked["after"] = true
	c.Quit()
	is := proxiedIMAP(t, s, proxyV1("127.0.0.5:6000", "192.0.2.1:143"))
	is.ok("LOGIN %s %s", faultUser, faultPass)
	is.ok("SELECT INBOX")
	seen := map[string]int{}
	for _, subj := range is.subjects("1:*") {
		seen[subj]++
	}
	for subj := range acked {
		if seen[subj] != 1 {
			t.Errorf("acknowledged message %s stored %d times", subj, seen[subj])
		}
	}
	if len(seen) != len(acked) {
		t.Errorf("stored %v, acknowledged %v", seen, acked)
	}
	is.ok("LOGOUT")
}
