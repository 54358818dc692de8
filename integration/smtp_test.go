package integration

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smtpUsers are the accounts every SMTP test server has.
var smtpUsers = map[string]string{
	"alice@example.org": "alice-pw-1",
	"bob@example.org":   "bob-pw-2",
}

// The bodies every client sends, checked byte for byte in the Maildir file.
const (
	bodyASCII = "From: a@remote.test\r\nTo: bob@example.org\r\nSubject: plain\r\n\r\nHello.\r\n"
	body8bit  = "From: a@remote.test\r\nSubject: 8bit\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9 na\xefve \xa0\r\n"
	bodyUTF8  = "From: a@remote.test\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln, 日本語, 🎉\r\n"
	bodyDots  = "From: a@remote.test\r\nSubject: dots\r\n\r\n.\r\n..\r\n.hidden\r\n. x\r\nend\r\n"
)

func startSMTPServer(t *testing.T) *Server {
	t.Helper()
	// Only the SMTP listeners: these tests need nothing else.
	s := startServer(t, "[listen]\npop3 = \"\"\npop3s = \"\"\nimap = \"\"\nimaps = \"\"\n")
	for u, p := range smtpUsers {
		s.AddUser(t, u, p)
	}
	return s
}

func (s *Server) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: s.CACertPool(), ServerName: TestHostname}
}

// maildirMessages returns the message files of account, oldest first by
// name, read from the store's files under the data dir.
func maildirMessages(t *testing.T, s *Server, account string) [][]byte {
	t.Helper()
	accounts := filepath.Join(s.DataDir, "accounts")
	ents, err := os.ReadDir(accounts)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		addr, err := os.ReadFile(filepath.Join(accounts, e.Name(), "address"))
		if err != nil || strings.TrimSpace(string(addr)) != account {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(accounts, e.Name(), "maildir", "*", "cur", "*"))
		newFiles, _ := filepath.Glob(filepath.Join(accounts, e.Name(), "maildir", "*", "new", "*"))
		files = append(files, newFiles...)
		var out [][]byte
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	return nil
}

// findStored waits until account has a message ending in body (the client's
// bytes after our Return-Path and Received fields) and checks those fields.
func findStored(t *testing.T, s *Server, account, body string) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, m := range maildirMessages(t, s, account) {
			if bytes.HasSuffix(m, []byte(body)) {
				if !bytes.HasPrefix(m, []byte("Return-Path: <")) || !bytes.Contains(m, []byte("\r\nReceived: from ")) {
					t.Errorf("stored message lacks trace fields: %q", m)
				}
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message ending in %q for %s (have %d)", body, account, len(maildirMessages(t, s, account)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func goSend(c *smtp.Client, from string, to []string, body string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return err
	}
	return w.Close()
}

func TestSMTPGoClient(t *testing.T) {
	s := startSMTPServer(t)

	t.Run("plain inbound, byte-exact", func(t *testing.T) {
		c, err := smtp.Dial(s.Addr("smtp"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, body := range []string{bodyASCII, body8bit, bodyUTF8, bodyDots} {
			if err := goSend(c, "a@remote.test", []string{"bob@example.org"}, body); err != nil {
				t.Fatal(err)
			}
			findStored(t, s, "bob@example.org", body)
		}
		if err := c.Quit(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("relay denied", func(t *testing.T) {
		c, err := smtp.Dial(s.Addr("smtp"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Mail("a@remote.test", nil); err != nil {
			t.Fatal(err)
		}
		err = c.Rcpt("victim@elsewhere.test", nil)
		if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 554 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
			t.Fatalf("RCPT to a foreign domain: %v", err)
		}
		err = c.Rcpt("nobody@example.org", nil)
		if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
			t.Fatalf("RCPT to an unknown user: %v", err)
		}
	})

	t.Run("STARTTLS and AUTH PLAIN on submission", func(t *testing.T) {
		c, err := smtp.DialStartTLS(s.Addr("submission"), s.clientTLS())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "wrong")); err == nil {
			t.Fatal("wrong password accepted")
		} else if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 535 {
			t.Fatalf("bad password: %v", err)
		}
		if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-pw-1")); err != nil {
			t.Fatal(err)
		}
		body := "From: alice@example.org\r\nSubject: sub\r\n\r\nvia 587\r\n"
		if err := goSend(c, "alice@example.org", []string{"bob@example.org"}, body); err != nil {
			t.Fatal(err)
		}
		m := findStored(t, s, "bob@example.org", body)
		for _, want := range []string{"with ESMTPSA", "(version=TLS1.", "(authenticated as alice@example.org)", "\r\nMessage-ID: <"} {
			if !bytes.Contains(m, []byte(want)) {
				t.Errorf("stored message lacks %q: %q", want, m)
			}
		}
		err = c.Mail("bob@example.org", nil)
		if se, ok := err.(*smtp.SMTPError); !ok || se.Code != 553 {
			t.Fatalf("MAIL FROM someone else's address: %v", err)
		}
	})

	t.Run("implicit TLS and AUTH LOGIN on submissions", func(t *testing.T) {
		c, err := smtp.DialTLS(s.Addr("submissions"), s.clientTLS())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Auth(sasl.NewLoginClient("bob@example.org", "bob-pw-2")); err != nil {
			t.Fatal(err)
		}
		// A foreign recipient from an authenticated user is accepted for
		// the queue.
		body := "From: bob@example.org\r\nSubject: 465\r\n\r\nvia 465\r\n"
		if err := goSend(c, "bob@example.org", []string{"alice@example.org", "friend@elsewhere.test"}, body); err != nil {
			t.Fatal(err)
		}
		findStored(t, s, "alice@example.org", body)
	})

	t.Run("pipelining", func(t *testing.T) {
		nc, err := net.Dial("tcp", s.Addr("smtp"))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(nc)
		reply := func() string {
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if len(l) < 4 || l[3] != '-' {
					return l
				}
			}
		}
		reply()
		body := "From: p@remote.test\r\nSubject: pipelined\r\n\r\none round trip\r\n"
		fmt.Fprintf(nc, "EHLO pipe.example\r\nMAIL FROM:<p@remote.test>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
		for _, want := range []string{"250", "250", "250", "250", "354"} {
			if got := reply(); !strings.HasPrefix(got, want) {
				t.Fatalf("got %q, want %s", got, want)
			}
		}
		fmt.Fprintf(nc, "%s.\r\nQUIT\r\n", body)
		if got := reply(); !strings.HasPrefix(got, "250 2.0.0") {
			t.Fatalf("end of data: %q", got)
		}
		reply()
		findStored(t, s, "alice@example.org", body)
		findStored(t, s, "bob@example.org", body)
	})
}

// TestSMTPSmuggling sends an SMTP smuggling attempt (a second transaction
// hidden behind <LF>.<LF>) to the binary: the message is refused as soon as
// the bare LF shows, the connection ends, and the hidden transaction is
// never run.
func TestSMTPSmuggling(t *testing.T) {
	s := startSMTPServer(t)
	nc, err := net.Dial("tcp", s.Addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(nc)
	reply := func() string {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if len(l) < 4 || l[3] != '-' {
				return l
			}
		}
	}
	reply()
	fmt.Fprintf(nc, "EHLO evil.example\r\nMAIL FROM:<e@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
	for range 4 {
		reply()
	}
	fmt.Fprintf(nc, "Subject: cover\r\n\r\nhello\n.\nMAIL FROM:<ceo@example.org>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\npay now\r\n.\r\nNOOP\r\n")
	if got := reply(); !strings.HasPrefix(got, "554 5.6.0") {
		t.Fatalf("smuggling attempt: %q, want 554 5.6.0", got)
	}
	if l, err := r.ReadString('\n'); err == nil {
		t.Fatalf("the connection goes on after the refusal: %q", l)
	}
	if n := len(maildirMessages(t, s, "alice@example.org")) + len(maildirMessages(t, s, "bob@example.org")); n != 0 {
		t.Fatalf("%d messages delivered", n)
	}
}

func TestSMTPParallelExactlyOnce(t *testing.T) {
	s := startSMTPServer(t)
	const senders, perSender = 10, 50
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(s.Addr("smtp"))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := range perSender {
				body := fmt.Sprintf("From: p@remote.test\r\nMessage-ID: <%d.%d@parallel.test>\r\nSubject: %d/%d\r\n\r\nbody\r\n", i, j, i, j)
				if err := goSend(c, "p@remote.test", []string{"bob@example.org"}, body); err != nil {
					errs <- fmt.Errorf("sender %d message %d: %w", i, j, err)
					return
				}
			}
			c.Quit()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range maildirMessages(t, s, "bob@example.org") {
		i := bytes.Index(m, []byte("Message-ID: <"))
		if i < 0 {
			continue
		}
		j := bytes.IndexByte(m[i:], '>')
		seen[string(m[i:i+j])]++
	}
	if len(seen) != senders*perSender {
		t.Fatalf("%d distinct messages, want %d", len(seen), senders*perSender)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
}

func TestSMTPSwaks(t *testing.T) {
	swaks := needTool(t, "swaks")
	s := startSMTPServer(t)
	dir := t.TempDir()
	run := func(t *testing.T, wantOK bool, body string, args ...string) string {
		t.Helper()
		f := filepath.Join(dir, "msg.eml")
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(swaks, append([]string{"--data", "@" + f, "--timeout", "20"}, args...)...)
		out, err := cmd.CombinedOutput()
		if strings.Contains(string(out), "TLS not available") {
			t.Skipf("swaks has no TLS support (install libnet-ssleay-perl, as .ci/run does): %s", out)
		}
		if wantOK && err != nil {
			t.Fatalf("swaks %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if !wantOK && err == nil {
			t.Fatalf("swaks %s succeeded:\n%s", strings.Join(args, " "), out)
		}
		return string(out)
	}
	smtpAddr, subAddr, subsAddr := s.Addr("smtp"), s.Addr("submission"), s.Addr("submissions")
	// swaks ends the data it sends with one more CRLF than the file has.
	stored := func(body string) string { return body + "\r\n" }

	t.Run("plain 8bit", func(t *testing.T) {
		run(t, true, body8bit, "--server", smtpAddr, "--from", "a@remote.test", "--to", "bob@example.org")
		findStored(t, s, "bob@example.org", stored(body8bit))
	})
	t.Run("pipelining utf-8 and dots", func(t *testing.T) {
		run(t, true, bodyUTF8, "--server", smtpAddr, "--pipeline", "--from", "a@remote.test", "--to", "bob@example.org")
		findStored(t, s, "bob@example.org", stored(bodyUTF8))
		run(t, true, bodyDots, "--server", smtpAddr, "--pipeline", "--from", "a@remote.test", "--to", "alice@example.org")
		findStored(t, s, "alice@example.org", stored(bodyDots))
	})
	t.Run("STARTTLS AUTH PLAIN", func(t *testing.T) {
		body := "From: alice@example.org\r\nSubject: swaks tls\r\n\r\nstarttls\r\n"
		out := run(t, true, body, "--server", subAddr, "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.org", "--auth-password", "alice-pw-1",
			"--from", "alice@example.org", "--to", "bob@example.org")
		if !strings.Contains(out, "235 2.0.0") {
			t.Errorf("no 235 in:\n%s", out)
		}
		findStored(t, s, "bob@example.org", stored(body))
	})
	t.Run("implicit TLS AUTH LOGIN", func(t *testing.T) {
		body := "From: bob@example.org\r\nSubject: swaks 465\r\n\r\ntls on connect\r\n"
		run(t, true, body, "--server", subsAddr, "--tls-on-connect", "--auth", "LOGIN", "--auth-user", "bob@example.org", "--auth-password", "bob-pw-2",
			"--from", "bob@example.org", "--to", "alice@example.org")
		findStored(t, s, "alice@example.org", stored(body))
	})
	t.Run("AUTH failure", func(t *testing.T) {
		out := run(t, false, bodyASCII, "--server", subAddr, "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.org", "--auth-password", "nope",
			"--from", "alice@example.org", "--to", "bob@example.org")
		if !strings.Contains(out, "535 5.7.8") {
			t.Errorf("no 535 5.7.8 in:\n%s", out)
		}
	})
	t.Run("AUTH required before MAIL", func(t *testing.T) {
		out := run(t, false, bodyASCII, "--server", subAddr, "--tls", "--from", "alice@example.org", "--to", "bob@example.org")
		if !strings.Contains(out, "530 5.7.0") {
			t.Errorf("no 530 5.7.0 in:\n%s", out)
		}
	})
	t.Run("relay denied", func(t *testing.T) {
		out := run(t, false, bodyASCII, "--server", smtpAddr, "--from", "a@remote.test", "--to", "victim@elsewhere.test")
		if !strings.Contains(out, "554 5.7.1") {
			t.Errorf("no 554 5.7.1 in:\n%s", out)
		}
	})
}

// pythonSMTP is run by python3 with the test's parameters as arguments; it
// prints one line per step so the test can check them.
const pythonSMTP = `
import smtplib, ssl, sys
host, smtp_port, sub_port, subs_port, cafile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
body = open(sys.argv[6], "rb").read()
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False

def step(name, fn):
    try:
        fn()
        print(name, "ok")
    except smtplib.SMTPRecipientsRefused as e:
        code, msg = list(e.recipients.values())[0]
        print(name, "refused", code, msg.decode())
    except smtplib.SMTPResponseException as e:
        print(name, "error", e.smtp_code, e.smtp_error.decode())

def plain():
    with smtplib.SMTP(host, smtp_port, timeout=20) as s:
        s.sendmail("py@remote.test", ["bob@example.org"], body)

def relay():
    with smtplib.SMTP(host, smtp_port, timeout=20) as s:
        s.sendmail("py@remote.test", ["victim@elsewhere.test"], body)

def starttls():
    with smtplib.SMTP(host, sub_port, timeout=20) as s:
        s.starttls(context=ctx)
        s.login("alice@example.org", "alice-pw-1")
        s.sendmail("alice@example.org", ["bob@example.org"], body.replace(b"py-marker", b"py-starttls").replace(b"py@remote.test", b"alice@example.org"))

def badauth():
    with smtplib.SMTP(host, sub_port, timeout=20) as s:
        s.starttls(context=ctx)
        s.login("alice@example.org", "wrong")

def implicit():
    with smtplib.SMTP_SSL(host, subs_port, timeout=20, context=ctx) as s:
        s.login("bob@example.org", "bob-pw-2")
        s.sendmail("bob@example.org", ["alice@example.org"], body.replace(b"py-marker", b"py-implicit").replace(b"py@remote.test", b"bob@example.org"))

step("plain", plain)
step("relay", relay)
step("starttls", starttls)
step("badauth", badauth)
step("implicit", implicit)
`

func TestSMTPPython(t *testing.T) {
	py := needTool(t, "python3")
	s := startSMTPServer(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "smtp.py")
	bodyFile := filepath.Join(dir, "body.eml")
	body := "From: py@remote.test\r\nSubject: python py-marker\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße 🎉 py-marker\r\n.dot line\r\n"
	os.WriteFile(script, []byte(pythonSMTP), 0o600)
	os.WriteFile(bodyFile, []byte(body), 0o600)
	port := func(name string) string { _, p, _ := net.SplitHostPort(s.Addr(name)); return p }
	cmd := exec.Command(py, script, "127.0.0.1", port("smtp"), port("submission"), port("submissions"),
		filepath.Join(s.DataDir, "tls", "cert.pem"), bodyFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{
		"plain ok\n",
		"relay refused 554 5.7.1 ",
		"starttls ok\n",
		"badauth error 535 5.7.8 ",
		"implicit ok\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("python output lacks %q:\n%s", want, got)
		}
	}
	findStored(t, s, "bob@example.org", body)
	// On submission From is the user's own address (the sender rule).
	findStored(t, s, "bob@example.org", strings.NewReplacer("py-marker", "py-starttls", "py@remote.test", "alice@example.org").Replace(body))
	findStored(t, s, "alice@example.org", strings.NewReplacer("py-marker", "py-implicit", "py@remote.test", "bob@example.org").Replace(body))
}

// TestSMTPAuthLoginInitialResponse drives the Outlook form of AUTH LOGIN
// by hand against the real auth database.
func TestSMTPAuthLoginInitialResponse(t *testing.T) {
	s := startSMTPServer(t)
	nc, err := tls.Dial("tcp", s.Addr("submissions"), s.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(nc)
	reply := func() string {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if len(l) < 4 || l[3] != '-' {
				return l
			}
		}
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	reply()
	for _, step := range [][2]string{
		{"EHLO outlook.example", "250 "},
		{"AUTH LOGIN " + b64("alice@example.org"), "334 " + b64("Password:")},
		{b64("alice-pw-1"), "235 2.0.0"},
		{"MAIL FROM: <alice@example.org>", "250 "},
	} {
		fmt.Fprintf(nc, "%s\r\n", step[0])
		if got := reply(); !strings.HasPrefix(got, step[1]) {
			t.Fatalf("%q: got %q, want %q", step[0], got, step[1])
		}
	}
}

func TestSMTPConnectionLimitAndVanishingClient(t *testing.T) {
	s := startServer(t, "[listen]\npop3 = \"\"\npop3s = \"\"\nimap = \"\"\nimaps = \"\"\n[limits]\nmax_connections_per_ip = 2\n")
	s.AddUser(t, "bob@example.org", "bob-pw-2")
	dial := func() (net.Conn, *bufio.Reader) {
		nc, err := net.Dial("tcp", s.Addr("smtp"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		return nc, bufio.NewReader(nc)
	}
	readLine := func(r *bufio.Reader) string {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	// A client that vanishes in the middle of DATA: nothing is delivered
	// and nothing is left in the spool.
	nc1, r1 := dial()
	readLine(r1)
	fmt.Fprintf(nc1, "HELO gone.example\r\nMAIL FROM:<g@remote.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
	for range 4 {
		readLine(r1)
	}
	fmt.Fprintf(nc1, "Subject: half\r\n\r\n%s", strings.Repeat("half a message\r\n", 500))

	nc2, r2 := dial()
	if l := readLine(r2); !strings.HasPrefix(l, "220 ") {
		t.Fatalf("second connection: %q", l)
	}
	_, r3 := dial()
	if l := readLine(r3); !strings.HasPrefix(l, "421 4.7.0") {
		t.Fatalf("third connection from the same address: %q, want 421 4.7.0", l)
	}
	nc1.Close()
	nc2.Close()

	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.Log(), "message not received") {
		if time.Now().After(deadline) {
			t.Fatal("server did not log the aborted message")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(maildirMessages(t, s, "bob@example.org")); n != 0 {
		t.Errorf("%d messages delivered from an aborted DATA", n)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.DataDir, "spool", "smtpd")); len(ents) != 0 {
		t.Errorf("spool not empty: %v", ents)
	}
}
