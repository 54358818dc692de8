package integration

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

const (
	pop3User = "carol@example.org"
	pop3Pass = "carol pop3 pw"
)

// startPOP3Server starts posthouse with one POP3 user. With secureLoopback
// false, USER/PASS and AUTH need TLS even from 127.0.0.1, so the clients
// really go through STLS.
func startPOP3Server(t *testing.T, secureLoopback bool) *Server {
	t.Helper()
	s := startServer(t, fmt.Sprintf("[pop3]\nloopback_is_secure = %v\n", secureLoopback))
	s.AddUser(t, pop3User, pop3Pass)
	return s
}

// pop3Deliver sends body to pop3User on the MTA port and returns the bytes
// the store keeps (our trace fields, then body), found on disk.
func pop3Deliver(t *testing.T, s *Server, body string) []byte {
	t.Helper()
	c, err := smtp.Dial(s.Addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@remote.test", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(pop3User, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	return pop3Stored(t, s, body)
}

// pop3Stored finds the stored message ending in body anywhere under the
// accounts directory (without assuming the store's layout): the smallest
// file ending in it, since an index may hold a copy of a new message's
// bytes (the maildir store's journal) and end with them.
func pop3Stored(t *testing.T, s *Server, body string) []byte {
	t.Helper()
	var found []byte
	filepath.WalkDir(filepath.Join(s.DataDir, "accounts"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() < int64(len(body)) || (found != nil && info.Size() >= int64(len(found))) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.HasSuffix(b, []byte(body)) {
			found = b
		}
		return nil
	})
	if found == nil {
		t.Fatalf("no stored message ends with the %d-octet body sent", len(body))
	}
	return found
}

// pop3Message builds a message of about size octets whose body has lines
// that need byte-stuffing (".", "..", ".x") and a unique Message-ID.
func pop3Message(tag string, size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender@remote.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s.%d@remote.test>\r\n\r\n", pop3User, tag, tag, time.Now().UnixNano())
	for i := 0; b.Len() < size; i++ {
		switch i % 7 {
		case 0:
			b.WriteString(".\r\n")
		case 1:
			b.WriteString("..\r\n")
		case 2:
			fmt.Fprintf(&b, ".line %d\r\n", i)
		default:
			fmt.Fprintf(&b, "%s line %d %s\r\n", tag, i, strings.Repeat("0123456789", 1+i%9))
		}
	}
	b.WriteString("end\r\n")
	return b.String()
}

func (s *Server) pop3ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: s.CACertPool(), ServerName: "127.0.0.1"}
}

// pop3Conn is a small raw client.
type pop3Conn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialPOP3(t *testing.T, s *Server, name string) *pop3Conn {
	t.Helper()
	var c net.Conn
	var err error
	if name == "pop3s" {
		c, err = tls.Dial("tcp", s.Addr(name), s.pop3ClientTLS())
	} else {
		c, err = net.Dial("tcp", s.Addr(name))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &pop3Conn{t: t, c: c, r: bufio.NewReader(c)}
	if l := p.line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("greeting %q", l)
	}
	return p
}

func (p *pop3Conn) line() string {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	l, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Fatalf("POP3 read: %v", err)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (p *pop3Conn) cmd(line, want string) string {
	p.t.Helper()
	fmt.Fprintf(p.c, "%s\r\n", line)
	l := p.line()
	if !strings.HasPrefix(l, want) {
		p.t.Fatalf("%s: got %q, want %q…", strings.Fields(line)[0], l, want)
	}
	return l
}

// multi reads a multi-line body and undoes byte-stuffing.
func (p *pop3Conn) multi() []byte {
	p.t.Helper()
	var out bytes.Buffer
	for {
		p.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		l, err := p.r.ReadString('\n')
		if err != nil {
			p.t.Fatalf("POP3 multi-line: %v", err)
		}
		if l == ".\r\n" {
			return out.Bytes()
		}
		out.WriteString(strings.TrimPrefix(l, "."))
	}
}

func (p *pop3Conn) login() {
	p.t.Helper()
	p.cmd("USER "+pop3User, "+OK")
	p.cmd("PASS "+pop3Pass, "+OK")
}

// TestPOP3Raw: STLS required off loopback-secure, a 10 MB message
// byte-exact over both ports, [IN-USE], deletion only at QUIT.
func TestPOP3Raw(t *testing.T) {
	s := startPOP3Server(t, false)
	stored := pop3Deliver(t, s, pop3Message("big", 10<<20))
	small := pop3Deliver(t, s, pop3Message("small", 4000))

	p := dialPOP3(t, s, "pop3")
	p.cmd("USER "+pop3User, "-ERR plaintext authentication is not allowed before TLS")
	p.cmd("STLS", "+OK")
	tc := tls.Client(p.c, s.pop3ClientTLS())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	p.c, p.r = tc, bufio.NewReader(tc)
	p.login()
	if got, want := p.cmd("LIST 1", "+OK"), "+OK 1 "+strconv.Itoa(len(stored)); got != want {
		t.Fatalf("LIST 1: %q, want %q", got, want)
	}
	p.cmd("RETR 1", "+OK "+strconv.Itoa(len(stored))+" octets")
	if got := p.multi(); !bytes.Equal(got, stored) {
		t.Fatalf("RETR over STLS: %d octets differ from the %d stored", len(got), len(stored))
	}
	p.cmd("DELE 1", "+OK")

	// Locked while this session is in TRANSACTION.
	q := dialPOP3(t, s, "pop3s")
	q.cmd("USER "+pop3User, "+OK")
	q.cmd("PASS "+pop3Pass, "-ERR [IN-USE]")

	p.c.Close() // no QUIT: the deletion is not applied
	deadline := time.Now().Add(10 * time.Second)
	for {
		q.cmd("USER "+pop3User, "+OK")
		fmt.Fprintf(q.c, "PASS %s\r\n", pop3Pass)
		if l := q.line(); strings.HasPrefix(l, "+OK") {
			break
		} else if !strings.HasPrefix(l, "-ERR [IN-USE]") || time.Now().After(deadline) {
			t.Fatalf("PASS after the first session dropped: %q", l)
		}
		time.Sleep(20 * time.Millisecond)
	}
	q.cmd("STAT", "+OK 2 "+strconv.Itoa(len(stored)+len(small)))
	q.cmd("RETR 2", "+OK")
	if got := q.multi(); !bytes.Equal(got, small) {
		t.Fatal("RETR over implicit TLS differs from the stored message")
	}
	q.cmd("TOP 1 2", "+OK")
	if got, want := q.multi(), stored[:bytes.Index(stored, []byte("\r\n\r\n"))+4+len(".\r\n..\r\n")]; !bytes.Equal(got, want) {
		t.Fatalf("TOP 1 2: %q, want %q", got, want)
	}
	q.cmd("DELE 1", "+OK")
	q.cmd("DELE 2", "+OK")
	q.cmd("QUIT", "+OK")
	r := dialPOP3(t, s, "pop3s")
	r.login()
	r.cmd("STAT", "+OK 0 0")
}

const poplibScript = `
import os, poplib, ssl, sys

host, port, mode, cafile, user, pw, outdir = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=cafile)
if mode == "tls":
    p = poplib.POP3_SSL(host, int(port), context=ctx, timeout=60)
else:
    p = poplib.POP3(host, int(port), timeout=60)
    caps = p.capa()
    assert "STLS" in caps and "USER" not in caps, caps
    try:
        p.user(user)
        sys.exit("USER accepted before STLS")
    except poplib.error_proto as e:
        print("before STLS:", e)
    p.stls(context=ctx)
caps = p.capa()
for c in ("USER", "UIDL", "TOP", "PIPELINING", "RESP-CODES", "SASL"):
    assert c in caps, caps
assert "STLS" not in caps, caps
p.user(user)
try:
    p.pass_("wrong password")
    sys.exit("wrong password accepted")
except poplib.error_proto as e:
    assert b"[AUTH]" in e.args[0], e
p.user(user)
p.pass_(pw)
count, size = p.stat()
resp, listing, _ = p.list()
resp, uidls, _ = p.uidl()
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    with open(os.path.join(outdir, "%d.eml" % i), "wb") as f:
        f.write(b"\r\n".join(lines) + b"\r\n")
    p.dele(i)
for l in listing:
    print("LIST", l.decode())
for u in uidls:
    print("UIDL", u.decode())
print("STAT", count, size)
p.quit()
`

// TestPOP3Poplib drives Python's poplib through STLS and implicit TLS.
func TestPOP3Poplib(t *testing.T) {
	python := needTool(t, "python3")
	s := startPOP3Server(t, false)
	script := filepath.Join(t.TempDir(), "pop.py")
	if err := os.WriteFile(script, []byte(poplibScript), 0o644); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(s.DataDir, "tls", "cert.pem")
	// Each client takes one 10 MB message; the other mode gets 1 MB, to
	// keep the race-enabled CI run short.
	for _, mode := range []struct {
		name, listener string
		bigSize        int
	}{{"stls", "pop3", 10 << 20}, {"tls", "pop3s", 1 << 20}} {
		t.Run(mode.name, func(t *testing.T) {
			small := pop3Message("small-"+mode.name, 2000)
			big := pop3Message("big-"+mode.name, mode.bigSize)
			want := [][]byte{pop3Deliver(t, s, small), pop3Deliver(t, s, big)}
			out := t.TempDir()
			host, port, _ := net.SplitHostPort(s.Addr(mode.listener))
			cmd := exec.Command(python, script, host, port, mode.name, ca, pop3User, pop3Pass, out)
			res, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("poplib: %v\n%s", err, res)
			}
			t.Logf("poplib:\n%s", res)
			if !strings.Contains(string(res), fmt.Sprintf("STAT 2 %d", len(want[0])+len(want[1]))) {
				t.Errorf("poplib STAT does not match the stored sizes %d+%d", len(want[0]), len(want[1]))
			}
			for i, w := range want {
				got, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("%d.eml", i+1)))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, w) {
					t.Errorf("message %d: poplib got %d octets, stored %d; not byte-exact", i+1, len(got), len(w))
				}
			}
			p := dialPOP3(t, s, "pop3s")
			p.login()
			p.cmd("STAT", "+OK 0 0")
			p.cmd("QUIT", "+OK")
		})
	}
}

// TestPOP3Fetchmail fetches with fetchmail through STLS and implicit TLS;
// fetchmail inserts its own Received field, the rest must be the stored
// octets.
func TestPOP3Fetchmail(t *testing.T) {
	fetchmail := needTool(t, "fetchmail")
	s := startPOP3Server(t, false)
	ca := filepath.Join(s.DataDir, "tls", "cert.pem")
	for _, mode := range []struct {
		name, listener, opts string
		bigSize              int
	}{
		{"stls", "pop3", "sslproto 'tls1.2+' sslcertck sslcommonname '" + TestHostname + "' sslcertfile '%s'", 1 << 20},
		{"tls", "pop3s", "ssl sslproto 'tls1.2+' sslcertck sslcommonname '" + TestHostname + "' sslcertfile '%s'", 10 << 20},
	} {
		t.Run(mode.name, func(t *testing.T) {
			small := pop3Message("fm-small-"+mode.name, 3000)
			big := pop3Message("fm-big-"+mode.name, mode.bigSize)
			want := [][]byte{pop3Deliver(t, s, small), pop3Deliver(t, s, big)}

			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			os.Mkdir(out, 0o755)
			mda := filepath.Join(dir, "mda.sh")
			os.WriteFile(mda, []byte("#!/bin/sh\nexec cat > \"$(mktemp "+out+"/msg.XXXXXX)\"\n"), 0o755)
			host, port, _ := net.SplitHostPort(s.Addr(mode.listener))
			rc := filepath.Join(dir, "fetchmailrc")
			os.WriteFile(rc, []byte(fmt.Sprintf(`set no bouncemail
set no syslog
poll %s service %s protocol pop3 uidl timeout 60
  user '%s' there with password '%s' is 'nobody' here
  no rewrite no stripcr no forcecr no keep fetchall
  mda '%s'
  `+mode.opts+"\n", host, port, pop3User, pop3Pass, mda, ca)), 0o600)
			cmd := exec.Command(fetchmail, "-f", rc, "--idfile", filepath.Join(dir, "ids"), "--pidfile", filepath.Join(dir, "pid"), "-v", "--nodetach")
			cmd.Env = append(os.Environ(), "HOME="+dir, "FETCHMAILHOME="+dir)
			res, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("fetchmail: %v\n%s", err, res)
			}
			files, _ := filepath.Glob(filepath.Join(out, "msg.*"))
			if len(files) != 2 {
				t.Fatalf("fetchmail delivered %d messages, want 2\n%s", len(files), res)
			}
			var got [][]byte
			for _, f := range files {
				b, _ := os.ReadFile(f)
				got = append(got, stripFetchmailReceived(b))
			}
			for i, w := range want {
				if !slices.ContainsFunc(got, func(g []byte) bool { return bytes.Equal(g, w) }) {
					t.Errorf("message %d (%d octets) not delivered byte-exact by fetchmail (got sizes %d, %d); stored starts %q, fetchmail's %q",
						i+1, len(w), len(got[0]), len(got[1]), w[:min(len(w), 400)], got[0][:min(len(got[0]), 600)])
				}
			}
			p := dialPOP3(t, s, "pop3s")
			p.login()
			p.cmd("STAT", "+OK 0 0")
			p.cmd("QUIT", "+OK")
		})
	}
}

// stripFetchmailReceived removes the Received field fetchmail inserts
// (after Return-Path), with its continuation lines.
func stripFetchmailReceived(b []byte) []byte {
	start := bytes.Index(b, []byte("\r\nReceived: from 127.0.0.1 [127.0.0.1]\r\n"))
	if start < 0 {
		return b
	}
	start += 2
	i := start
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return b
		}
		i += j + 1
		if i >= len(b) || (b[i] != ' ' && b[i] != '\t') {
			return append(b[:start:start], b[i:]...)
		}
	}
}

// TestPOP3AndIMAP: POP3 and IMAP share INBOX. DELE+QUIT over POP3 removes
// the message from IMAP; RETR makes it \Seen there; IMAP works while POP3
// holds the maildrop lock; an IMAP expunge is gone from the next POP3
// session; UIDL carries the IMAP UID.
func TestPOP3AndIMAP(t *testing.T) {
	s := startPOP3Server(t, true)
	for i := range 3 {
		pop3Deliver(t, s, pop3Message(fmt.Sprintf("x%d", i), 500))
	}
	ic, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{TLSConfig: s.pop3ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login(pop3User, pop3Pass).Wait(); err != nil {
		t.Fatal(err)
	}

	p := dialPOP3(t, s, "pop3")
	p.login()
	p.cmd("UIDL 1", "+OK")
	p.cmd("RETR 2", "+OK")
	p.multi()
	p.cmd("DELE 1", "+OK")

	// IMAP is not blocked by the POP3 lock, and sees no deletion yet.
	sel, err := ic.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 3 {
		t.Fatalf("IMAP sees %d messages during the POP3 session, want 3", sel.NumMessages)
	}
	p.cmd("QUIT", "+OK")

	msgs := imapList(t, ic)
	if len(msgs) != 2 {
		t.Fatalf("IMAP after POP3 QUIT: %d messages, want 2", len(msgs))
	}
	if !slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Errorf("message RETR'd over POP3 has IMAP flags %v, want \\Seen", msgs[0].Flags)
	}
	if slices.Contains(msgs[1].Flags, imap.FlagSeen) {
		t.Errorf("untouched message has IMAP flags %v", msgs[1].Flags)
	}

	// UIDL ends in the IMAP UID.
	p = dialPOP3(t, s, "pop3")
	p.login()
	p.cmd("UIDL", "+OK")
	uidls := strings.Split(strings.TrimSpace(string(p.multi())), "\r\n")
	if len(uidls) != 2 {
		t.Fatalf("UIDL: %q", uidls)
	}
	for i, l := range uidls {
		if !strings.HasSuffix(l, "."+strconv.Itoa(int(msgs[i].UID))) {
			t.Errorf("UIDL line %q does not carry IMAP UID %d", l, msgs[i].UID)
		}
	}
	// Expunged over IMAP while POP3 holds its snapshot.
	if err := ic.Store(imap.UIDSetNum(msgs[0].UID), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := ic.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	p.cmd("RETR 1", "-ERR")
	p.cmd("RETR 2", "+OK")
	p.multi()
	p.cmd("QUIT", "+OK")
	p = dialPOP3(t, s, "pop3")
	p.login()
	p.cmd("STAT", "+OK 1 ")
	p.cmd("QUIT", "+OK")
}

func imapList(t *testing.T, ic *imapclient.Client) []*imapclient.FetchMessageBuffer {
	t.Helper()
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := ic.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// TestPOP3Shutdown: SIGTERM during a POP3 session with a DELE pending says
// goodbye with [SYS/TEMP] and applies nothing; the message is there after
// a restart.
func TestPOP3Shutdown(t *testing.T) {
	s := startPOP3Server(t, true)
	stored := pop3Deliver(t, s, pop3Message("keep", 1000))
	p := dialPOP3(t, s, "pop3")
	p.login()
	p.cmd("DELE 1", "+OK")
	s.Stop(t)
	if l := p.line(); l != "-ERR [SYS/TEMP] server shutting down, try again later" {
		t.Fatalf("goodbye: %q", l)
	}
	s.Restart(t)
	q := dialPOP3(t, s, "pop3")
	q.login()
	q.cmd("STAT", "+OK 1 "+strconv.Itoa(len(stored)))
	q.cmd("QUIT", "+OK")
}

// TestPOP3Throttled: after enough distinct failed logins from one address,
// auth throttles it and POP3 answers -ERR [SYS/TEMP], even for the right
// password; a connection is closed after three failures. Loopback is a
// trusted network by default (a webmail logs in for all its users from
// there), so the lockout is tested with trusted_networks = [], and the
// default shown not to lock loopback out.
func TestPOP3Throttled(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted string
		locked  bool
	}{
		{"untrusted", "[]", true},
		{"trusted loopback (default)", `["127.0.0.0/8", "::1/128"]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, "[pop3]\nloopback_is_secure = true\n[auth]\ntrusted_networks = "+tc.trusted+"\n")
			s.AddUser(t, pop3User, pop3Pass)
			var p *pop3Conn
			for i := 0; i < 20; i++ {
				if i%3 == 0 {
					p = dialPOP3(t, s, "pop3")
				}
				p.cmd(fmt.Sprintf("USER nobody%d@example.org", i), "+OK")
				fmt.Fprintf(p.c, "PASS guess-%d\r\n", i)
				l := p.line()
				if strings.HasPrefix(l, "-ERR [SYS/TEMP]") && tc.locked {
					break
				}
				if !strings.HasPrefix(l, "-ERR [AUTH]") {
					t.Fatalf("failed login %d: %q", i, l)
				}
				if i == 19 && tc.locked {
					t.Fatal("no throttling after 20 failed logins")
				}
			}
			q := dialPOP3(t, s, "pop3")
			q.cmd("USER "+pop3User, "+OK")
			if tc.locked {
				q.cmd("PASS "+pop3Pass, "-ERR [SYS/TEMP]")
			} else {
				q.cmd("PASS "+pop3Pass, "+OK")
			}
		})
	}
}

// TestPOP3SASL: AUTH PLAIN and LOGIN (RFC 5034) against the real auth
// database, with and without initial response, over implicit TLS.
func TestPOP3SASL(t *testing.T) {
	s := startPOP3Server(t, false)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	plain := b64("\x00" + pop3User + "\x00" + pop3Pass)
	for _, tc := range []struct {
		name   string
		script [][2]string
	}{
		{"PLAIN initial response", [][2]string{{"AUTH PLAIN " + plain, "+OK"}}},
		{"PLAIN continuation", [][2]string{{"AUTH PLAIN", "+ "}, {plain, "+OK"}}},
		{"PLAIN wrong password", [][2]string{{"AUTH PLAIN " + b64("\x00"+pop3User+"\x00nope"), "-ERR [AUTH]"}, {"AUTH PLAIN " + plain, "+OK"}}},
		{"PLAIN cancelled", [][2]string{{"AUTH PLAIN", "+ "}, {"*", "-ERR"}, {"AUTH PLAIN " + plain, "+OK"}}},
		{"LOGIN", [][2]string{{"AUTH LOGIN", "+ "}, {b64(pop3User), "+ "}, {b64(pop3Pass), "+OK"}}},
		{"LOGIN initial response", [][2]string{{"AUTH LOGIN " + b64(pop3User), "+ "}, {b64(pop3Pass), "+OK"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := dialPOP3(t, s, "pop3s")
			for _, st := range tc.script {
				p.cmd(st[0], st[1])
			}
			p.cmd("STAT", "+OK")
			p.cmd("QUIT", "+OK")
		})
	}
	// Over plaintext without STLS, AUTH is refused before any check.
	p := dialPOP3(t, s, "pop3")
	p.cmd("AUTH PLAIN "+plain, "-ERR plaintext authentication is not allowed before TLS")
}
