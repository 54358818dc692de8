package integration

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const (
	imapUser = "ivy@example.org"
	imapPass = "ivy-imap-secret"
)

func startIMAPServer(t *testing.T) *Server {
	t.Helper()
	s := startServer(t, "[listen]\npop3 = \"\"\npop3s = \"\"\nsubmission = \"\"\nsubmissions = \"\"\n")
	s.AddUser(t, imapUser, imapPass)
	return s
}

func imapMessage(subject string, size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender@remote.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@remote.test>\r\n\r\n", imapUser, subject, subject)
	for b.Len() < size {
		b.WriteString("The quick brown fox jumps over the lazy dog. 0123456789\r\n")
	}
	return b.String()
}

// smtpDeliver sends body to imapUser through the MTA listener and returns
// when the server has answered 250 (the message is durable then).
func imapSMTPDeliver(t *testing.T, s *Server, body string) {
	t.Helper()
	c, err := smtp.Dial(s.Addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if err := goSend(c, "sender@remote.test", []string{imapUser}, body); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) imapTLS() *tls.Config {
	return &tls.Config{RootCAs: s.CACertPool(), ServerName: TestHostname}
}

// TestIMAPGoClient: go-imap's client over implicit TLS and STARTTLS reads a
// message delivered over SMTP byte for byte (after our trace headers),
// appends, copies, moves and expunges.
func TestIMAPGoClient(t *testing.T) {
	s := startIMAPServer(t)
	body := imapMessage("go-client", 3000)
	imapSMTPDeliver(t, s, body)

	for _, mode := range []string{"imaps", "starttls"} {
		t.Run(mode, func(t *testing.T) {
			var (
				c   *imapclient.Client
				err error
			)
			opts := &imapclient.Options{TLSConfig: s.imapTLS()}
			if mode == "imaps" {
				c, err = imapclient.DialTLS(s.Addr("imaps"), opts)
			} else {
				c, err = imapclient.DialStartTLS(s.Addr("imap"), opts)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Login(imapUser, imapPass).Wait(); err != nil {
				t.Fatal(err)
			}
			sel, err := c.Select("INBOX", nil).Wait()
			if err != nil {
				t.Fatal(err)
			}
			if sel.NumMessages < 1 {
				t.Fatalf("INBOX has %d messages", sel.NumMessages)
			}
			msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
				UID: true, Flags: true, RFC822Size: true, Envelope: true,
				BodySection: []*imap.FetchItemBodySection{{Peek: true}},
			}).Collect()
			if err != nil {
				t.Fatal(err)
			}
			got := msgs[0].FindBodySection(&imap.FetchItemBodySection{Peek: true})
			if !bytes.HasSuffix(got, []byte(body)) || int64(len(got)) != msgs[0].RFC822Size {
				t.Errorf("BODY[] (%d bytes, RFC822.SIZE %d) does not end with the %d bytes sent", len(got), msgs[0].RFC822Size, len(body))
			}
			if msgs[0].Envelope == nil || msgs[0].Envelope.Subject != "go-client" {
				t.Errorf("envelope: %+v", msgs[0].Envelope)
			}
		})
	}

	c, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{TLSConfig: s.imapTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imapUser, imapPass).Wait(); err != nil {
		t.Fatal(err)
	}
	draft := "From: ivy@example.org\r\nSubject: draft\r\n\r\nnot yet\r\n"
	ac := c.Append("Drafts", int64(len(draft)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft}})
	io.WriteString(ac, draft)
	ac.Close()
	ad, err := ac.Wait()
	if err != nil || ad.UID == 0 {
		t.Fatalf("APPEND: %+v %v", ad, err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "Archive").Wait(); err != nil {
		t.Fatalf("COPY: %v", err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), "Trash").Wait(); err != nil {
		t.Fatalf("MOVE: %v", err)
	}
	for name, want := range map[string]uint32{"INBOX": 0, "Archive": 1, "Trash": 1, "Drafts": 1} {
		st, err := c.Status(name, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil || *st.NumMessages != want {
			t.Errorf("STATUS %s: %v %v, want %d", name, st, err, want)
		}
	}
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	special := map[string]bool{}
	for _, b := range boxes {
		for _, a := range b.Attrs {
			special[string(a)+" "+b.Mailbox] = true
		}
	}
	for _, want := range []string{`\Sent Sent`, `\Trash Trash`, `\Drafts Drafts`, `\Junk Junk`, `\Archive Archive`} {
		if !special[want] {
			t.Errorf("LIST lacks %s: %v", want, special)
		}
	}
}

// TestIMAPIdleSeesSMTPDelivery: a client in IDLE sees EXISTS within a second
// of the SMTP server's 250 for a new message.
func TestIMAPIdleSeesSMTPDelivery(t *testing.T) {
	s := startIMAPServer(t)
	var (
		mu     sync.Mutex
		exists = make(chan uint32, 16)
	)
	c, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{
		TLSConfig: s.imapTLS(),
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				mu.Lock()
				defer mu.Unlock()
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imapUser, imapPass).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		start := time.Now()
		imapSMTPDeliver(t, s, imapMessage(fmt.Sprintf("idle-%d", i), 500))
		sent := time.Now()
		select {
		case n := <-exists:
			if n != uint32(i) {
				t.Errorf("EXISTS %d, want %d", n, i)
			}
			t.Logf("delivery %d: SMTP session %v, EXISTS seen %v after the 250", i, sent.Sub(start), time.Since(sent))
		case <-time.After(time.Second):
			t.Fatalf("delivery %d: no EXISTS within a second", i)
		}
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

const imaplibScript = `
import imaplib, ssl, sys
host, port, sport, ca, user, pw = sys.argv[1:7]

def run(m, label):
    m.login(user, pw)
    typ, data = m.list()
    print(label, "LIST", typ, len(data))
    typ, data = m.select("INBOX")
    print(label, "SELECT", typ, data[0].decode())
    typ, data = m.search(None, "ALL")
    print(label, "SEARCH", typ, data[0].decode())
    typ, data = m.fetch("1", "(RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    print(label, "FETCH", typ, data[0][1].decode().strip())
    msg = b"From: py@example.org\r\nSubject: from-imaplib-" + label.encode() + b"\r\n\r\nhello\r\n"
    typ, data = m.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(1700000000), msg)
    print(label, "APPEND", typ, data[0].decode())
    typ, data = m.uid("SEARCH", None, "SUBJECT", "from-imaplib-" + label)
    print(label, "UIDSEARCH", typ, data[0].decode())
    uid = data[0].split()[-1]
    typ, data = m.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
    print(label, "STORE", typ)
    typ, data = m.expunge()
    print(label, "EXPUNGE", typ, data)
    typ, data = m.status("INBOX", "(MESSAGES UNSEEN)")
    print(label, "STATUS", typ, data[0].decode())
    m.create("py/" + label)
    typ, data = m.list("py")
    print(label, "CREATED", typ, [d.decode() for d in data])
    m.logout()

run(imaplib.IMAP4(host, int(port)), "plain")
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
run(imaplib.IMAP4_SSL(host, int(sport), ssl_context=ctx), "tls")
`

// TestIMAPPythonImaplib drives Python's imaplib over the plain listener
// (loopback counts as secure) and implicit TLS.
func TestIMAPPythonImaplib(t *testing.T) {
	python := needTool(t, "python3")
	s := startIMAPServer(t)
	imapSMTPDeliver(t, s, imapMessage("for-imaplib", 1000))
	script := filepath.Join(t.TempDir(), "imap.py")
	if err := os.WriteFile(script, []byte(imaplibScript), 0o644); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.Addr("imap"))
	_, sport, _ := net.SplitHostPort(s.Addr("imaps"))
	ca := filepath.Join(s.DataDir, "tls", "cert.pem")
	out, err := exec.Command(python, script, host, port, sport, ca, imapUser, imapPass).CombinedOutput()
	t.Logf("imaplib:\n%s", out)
	if err != nil {
		t.Fatalf("imaplib: %v", err)
	}
	for _, want := range []string{
		"plain SELECT OK 1", "plain SEARCH OK 1", "plain FETCH OK Subject: for-imaplib", "plain APPEND OK [APPENDUID",
		"plain STORE OK", "plain EXPUNGE OK", "plain STATUS OK INBOX (MESSAGES 1 UNSEEN 1)", "plain CREATED OK",
		"tls SELECT OK 1", "tls APPEND OK", "tls EXPUNGE OK",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("imaplib output lacks %q", want)
		}
	}
}

// TestIMAPMbsync syncs the account with mbsync (isync) both ways: server to
// a local Maildir, then a new local message and a local flag change back.
func TestIMAPMbsync(t *testing.T) {
	mbsync := needTool(t, "mbsync")
	s := startIMAPServer(t)
	imapSMTPDeliver(t, s, imapMessage("sync-1", 800))
	imapSMTPDeliver(t, s, imapMessage("sync-2", 800))

	dir := t.TempDir()
	local := filepath.Join(dir, "mail")
	if err := os.MkdirAll(local, 0o700); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.Addr("imaps"))
	rc := fmt.Sprintf(`IMAPAccount posthouse
Host %s
Port %s
User %s
Pass %s
SSLType IMAPS
CertificateFile %s

IMAPStore remote
Account posthouse

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
`, host, port, imapUser, imapPass, filepath.Join(s.DataDir, "tls", "cert.pem"), local, local)
	rcPath := filepath.Join(dir, "mbsyncrc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() {
		t.Helper()
		cmd := exec.Command(mbsync, "-c", rcPath, "-a")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
		t.Logf("mbsync:\n%s", out)
	}
	run()

	inboxFiles := func() []string {
		var names []string
		for _, sub := range []string{"cur", "new"} {
			ents, _ := os.ReadDir(filepath.Join(local, "INBOX", sub))
			for _, e := range ents {
				names = append(names, filepath.Join(local, "INBOX", sub, e.Name()))
			}
		}
		return names
	}
	files := inboxFiles()
	if len(files) != 2 {
		t.Fatalf("local INBOX has %d messages after the first sync, want 2: %v", len(files), files)
	}
	for _, sub := range []string{"Sent", "Trash", "Drafts", "Junk", "Archive"} {
		if _, err := os.Stat(filepath.Join(local, sub)); err != nil {
			t.Errorf("local %s missing: %v", sub, err)
		}
	}

	// Locally: mark the first message seen, add a new one.
	first := files[0]
	seen := first
	if i := strings.LastIndex(first, ":2,"); i >= 0 {
		seen = first[:i] + ":2,S"
	} else {
		seen = first + ":2,S"
	}
	seen = strings.Replace(seen, string(filepath.Separator)+"new"+string(filepath.Separator), string(filepath.Separator)+"cur"+string(filepath.Separator), 1)
	if err := os.Rename(first, seen); err != nil {
		t.Fatal(err)
	}
	newMsg := "From: ivy@example.org\r\nSubject: made-locally\r\n\r\nwritten by hand\r\n"
	if err := os.WriteFile(filepath.Join(local, "INBOX", "new", "1700000000.local.host"), []byte(newMsg), 0o600); err != nil {
		t.Fatal(err)
	}
	run()

	c, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{TLSConfig: s.imapTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imapUser, imapPass).Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, NumUnseen: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 3 || *st.NumUnseen != 2 {
		t.Errorf("server INBOX after the second sync: %d messages, %d unseen; want 3 and 2", *st.NumMessages, *st.NumUnseen)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	found, err := c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "made-locally"}}}, nil).Wait()
	if err != nil || len(found.AllSeqNums()) != 1 {
		t.Errorf("message made locally not on the server: %v %v", found, err)
	}
}

// TestIMAPSeesPOP3Deletion: messages a POP3 client deletes (applied at QUIT)
// reach a selected IMAP session as EXPUNGE, with the right sequence numbers.
func TestIMAPSeesPOP3Deletion(t *testing.T) {
	s := startServer(t, "[pop3]\nloopback_is_secure = true\n")
	s.AddUser(t, imapUser, imapPass)
	for i := 1; i <= 3; i++ {
		imapSMTPDeliver(t, s, imapMessage(fmt.Sprintf("pop-%d", i), 300))
	}
	var (
		mu       sync.Mutex
		expunged []uint32
	)
	c, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{
		TLSConfig: s.imapTLS(),
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Expunge: func(seq uint32) {
				mu.Lock()
				expunged = append(expunged, seq)
				mu.Unlock()
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imapUser, imapPass).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	// POP3: delete messages 1 and 3.
	pc, err := net.Dial("tcp", s.Addr("pop3"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(pc)
	for _, cmd := range []string{"", "USER " + imapUser, "PASS " + imapPass, "DELE 1", "DELE 3", "QUIT"} {
		if cmd != "" {
			fmt.Fprintf(pc, "%s\r\n", cmd)
		}
		l, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, "+OK") {
			t.Fatalf("POP3 %q: %q %v", cmd, l, err)
		}
	}

	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		n := len(expunged)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	// Message 1 goes first, then the old message 3 is number 2.
	if len(expunged) != 2 || expunged[0] != 1 || expunged[1] != 2 {
		t.Errorf("EXPUNGE responses %v, want [1 2]", expunged)
	}
}

// TestIMAPAuthenticate: SASL PLAIN (with SASL-IR) and LOGIN through the
// auth database, and a wrong password refused with AUTHENTICATIONFAILED.
func TestIMAPAuthenticate(t *testing.T) {
	s := startIMAPServer(t)
	for _, tc := range []struct {
		name   string
		client sasl.Client
		ok     bool
	}{
		{"plain", sasl.NewPlainClient("", imapUser, imapPass), true},
		{"login", sasl.NewLoginClient(imapUser, imapPass), true},
		{"plain-wrong", sasl.NewPlainClient("", imapUser, "wrong"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{TLSConfig: s.imapTLS()})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Authenticate(tc.client)
			if tc.ok && err != nil {
				t.Fatalf("AUTHENTICATE: %v", err)
			}
			if !tc.ok {
				var ie *imap.Error
				if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAuthenticationFailed {
					t.Fatalf("AUTHENTICATE with a wrong password: %v", err)
				}
				return
			}
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
