package smtpd

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"bob@example.org", "Bob@Example.ORG", "jöran@bücher.example", "a@[192.0.2.1]", "a@[IPv6:::1]", "@x", "a@", "a@b@c", "a@-x.org", "a@x..org", "\x00@x.org", "a b@x.org"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, smtputf8 bool) {
		addr, err := parseAddress(s, smtputf8, errBadRecipient)
		if err != nil {
			return
		}
		if !utf8.ValidString(addr) || len(addr) > maxAddressLen {
			t.Fatalf("accepted %q as %q", s, addr)
		}
		for i := 0; i < len(addr); i++ {
			if c := addr[i]; c < 0x20 || c == 0x7f || (!smtputf8 && c >= 0x80) {
				t.Fatalf("accepted %q with byte %#x", s, c)
			}
		}
		at := strings.LastIndexByte(addr, '@')
		if at <= 0 || addr[at+1:] != strings.ToLower(addr[at+1:]) {
			t.Fatalf("accepted %q as %q", s, addr)
		}
		again, err := parseAddress(addr, smtputf8, errBadRecipient)
		if err != nil || again != addr {
			t.Fatalf("not idempotent: %q → %q → %q, %v", s, addr, again, err)
		}
	})
}

// FuzzParseCommand sends arbitrary command lines to a live server (after
// EHLO, in a transaction) and checks that every reply is a well-formed
// reply with an enhanced status code, and that the server keeps serving.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"MAIL FROM:<a@b.example>", "MAIL FROM: <a@b.example> SIZE=10 BODY=8BITMIME SMTPUTF8",
		"RCPT TO:<bob@example.org> NOTIFY=NEVER", "RCPT TO:<\"quoted local\"@example.org>",
		"MAIL FROM:<@route,@x:a@b.example>", "AUTH PLAIN", "AUTH", "BDAT 0 LAST", "BDAT x",
		"DATA x", "HELO", "EHLO \x00", "RSET", "VRFY x", "NOOP", "MAIL FROM:<a@b.example> AUTH=<>",
		"STARTTLS", "RCPT TO:<postmaster>",
	} {
		f.Add(s)
	}
	// One connection per input, all from 127.0.0.1: no connection limits
	// (Options.Conns is nil).
	ts := newTestServer(f, func(o *Options) { o.CommandTimeout = 2 * time.Second })
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\r\n") || len(line) > 900 {
			return
		}
		upper := strings.ToUpper(line)
		if strings.HasPrefix(upper, "STARTTLS") || strings.HasPrefix(upper, "BDAT") || strings.HasPrefix(upper, "AUTH") ||
			strings.HasPrefix(upper, "DATA") || strings.HasPrefix(upper, "QUIT") {
			// These change the framing of what follows; covered by
			// dedicated tests.
			return
		}
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(nc)
		readReply := func() []string {
			var lines []string
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					t.Fatalf("after %q: %v (%q)", line, err, lines)
				}
				lines = append(lines, l)
				if len(l) < 4 || l[3] != '-' {
					return lines
				}
			}
		}
		readReply()
		nc.Write([]byte("EHLO fuzz.example\r\nMAIL FROM:<x@remote.test>\r\n"))
		readReply()
		readReply()
		nc.Write([]byte(line + "\r\nNOOP\r\n"))
		reply := readReply()
		last := reply[len(reply)-1]
		if len(last) < 10 || last[3] != ' ' || !strings.HasSuffix(last, "\r\n") {
			t.Fatalf("%q: malformed reply %q", line, reply)
		}
		if c := last[0]; (c == '2' || c == '4' || c == '5') && !strings.HasPrefix(upper, "EHLO") && !strings.HasPrefix(upper, "HELO") && !strings.HasPrefix(upper, "LHLO") {
			if last[4] != c || last[5] != '.' {
				t.Fatalf("%q: no enhanced code in %q", line, last)
			}
		}
		// The connection is still in step (unless closed for errors).
		if !strings.HasPrefix(last, "421 ") {
			noop := readReply()
			if !strings.HasPrefix(noop[len(noop)-1], "250 ") {
				t.Fatalf("%q: NOOP got %q", line, noop)
			}
		}
	})
}

func FuzzParseAuthResults(f *testing.F) {
	f.Add("Authentication-Results: mx.example.org; dkim=pass\r\nSubject: x\r\n\r\nbody\r\n")
	f.Add("A: b\r\n\tc\r\nAuthentication-Results: (c(n)\\)) MX.EXAMPLE.ORG;\r\n none\r\n\r\n")
	f.Add("Authentication-Results:mx.example.org\r\n")
	f.Add("\r\n")
	f.Fuzz(func(t *testing.T, msg string) {
		got := forgedAuthResults(strings.NewReader(msg), int64(len(msg)), "mx.example.org")
		var prev int64
		for _, r := range got {
			if r[0] < prev || r[1] <= r[0] || r[1] > int64(len(msg)) {
				t.Fatalf("bad range %v in %v for %q", r, got, msg)
			}
			if !strings.HasPrefix(strings.ToLower(msg[r[0]:r[1]]), "authentication-results") {
				t.Fatalf("range %v is %q", r, msg[r[0]:r[1]])
			}
			prev = r[1]
		}
	})
}
