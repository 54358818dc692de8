package integration

// Users' Sieve rules and out-of-office, end to end: a script put with the
// admin CLI, mail over SMTP, the result over IMAP (go-imap's client), and
// vacation responses through the queue to a loopback receiver standing
// for remote.test's MX.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

const sieveRules = `require ["fileinto", "mailbox", "imap4flags", "vacation", "reject"];
if header :contains "subject" "offer" {
	reject "No offers, thank you.";
	stop;
}
if header :contains "subject" "report" {
	fileinto :create :flags "\\Flagged" "Reports";
}
vacation :days 1 :subject "Away" "I am away until Monday.";
`

// smtpFrom sends body from sender to rcpt over the MTA port.
func smtpFrom(t *testing.T, s *Server, sender, rcpt, body string) error {
	t.Helper()
	c, err := smtp.Dial(s.Addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.remote.test"); err != nil {
		t.Fatal(err)
	}
	return goSend(c, sender, []string{rcpt}, body)
}

func TestSieveEndToEnd(t *testing.T) {
	recv := startFakeReceiver(t)
	s := startServer(t, fmt.Sprintf("[queue]\nremote_port = %s\n[listen]\npop3 = \"\"\npop3s = \"\"\n", recv.port))
	s.DNS.Add("remote.test. MX 10 mx.remote.test.", "mx.remote.test. A 127.0.0.1")
	s.AddUser(t, imapUser, imapPass)

	// A script with an error is refused with its line; the good one is
	// stored and activated while the server runs.
	r := s.RunAdmin(t, "keep;\nfileinto \"x\";\n", "sieve", "put", imapUser, "broken")
	if r.Code != 2 || !strings.Contains(r.Stderr, "line 2") {
		t.Fatalf("broken script: exit %d, %s", r.Code, r.Stderr)
	}
	file := filepath.Join(t.TempDir(), "rules.sieve")
	if err := os.WriteFile(file, []byte(sieveRules), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Admin(t, "", "sieve", "put", "--activate", imapUser, "rules", file)

	msg := func(from, subject string) string {
		return fmt.Sprintf("From: %s\r\nTo: Ivy <%s>\r\nSubject: %s\r\nMessage-ID: <%s@remote.test>\r\n\r\nHello.\r\n",
			from, imapUser, subject, strings.ReplaceAll(subject, " ", "-"))
	}
	carol, dave := "carol@remote.test", "dave@remote.test"
	if err := smtpFrom(t, s, carol, imapUser, msg(carol, "monthly report")); err != nil {
		t.Fatal(err)
	}
	if err := smtpFrom(t, s, carol, imapUser, msg(carol, "lunch")); err != nil {
		t.Fatal(err)
	}
	// reject: refused at SMTP time with the script's reason (RFC 5429).
	err := smtpFrom(t, s, dave, imapUser, msg(dave, "special offer"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) || !strings.Contains(se.Message, "No offers, thank you.") {
		t.Fatalf("reject: %v", err)
	}
	if err := smtpFrom(t, s, dave, imapUser, msg(dave, "hi")); err != nil {
		t.Fatal(err)
	}

	// The copies, over IMAP.
	c, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{TLSConfig: s.imapTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imapUser, imapPass).Wait(); err != nil {
		t.Fatal(err)
	}
	subjects := func(mailbox string) (subj []string, flagged []bool) {
		t.Helper()
		if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatalf("select %s: %v", mailbox, err)
		}
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Envelope: true, Flags: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			subj = append(subj, m.Envelope.Subject)
			flagged = append(flagged, slices.Contains(m.Flags, imap.FlagFlagged))
		}
		return subj, flagged
	}
	if subj, flagged := subjects("Reports"); !slices.Equal(subj, []string{"monthly report"}) || !flagged[0] {
		t.Errorf("Reports: %v flagged %v", subj, flagged)
	}
	if subj, _ := subjects("INBOX"); !slices.Equal(subj, []string{"lunch", "hi"}) {
		t.Errorf("INBOX: %v", subj)
	}

	// Vacation: one response to carol (two messages within :days), one to
	// dave (his rejected message got none), all through the queue.
	waitUntil(t, 20*time.Second, "two vacation responses", func() bool { return recv.count() >= 2 })
	waitUntil(t, 10*time.Second, "empty queue", func() bool {
		return strings.Contains(s.Admin(t, "", "queue", "list"), "queue is empty")
	})
	recv.mu.Lock()
	got := slices.Clone(recv.received)
	recv.mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d responses, want 2", len(got))
	}
	var to []string
	for _, b := range got {
		for _, want := range []string{"From: <" + imapUser + ">", "Subject: Away", "Auto-Submitted: auto-replied", "\r\n\r\nI am away until Monday.\r\n"} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("response lacks %q:\n%s", want, b)
			}
		}
		for _, who := range []string{carol, dave} {
			if bytes.Contains(b, []byte("To: <"+who+">")) {
				to = append(to, who)
			}
		}
	}
	slices.Sort(to)
	if !slices.Equal(to, []string{carol, dave}) {
		t.Errorf("responses to %v", to)
	}
	if !bytes.Contains(got[0], []byte("In-Reply-To: <")) {
		t.Errorf("no In-Reply-To:\n%s", got[0])
	}

	// The administrator's out-of-office, beside the script: a new sender
	// gets its response (and the user's filing still applies).
	away := filepath.Join(t.TempDir(), "away.txt")
	os.WriteFile(away, []byte("Ivy is on leave.\n"), 0o644)
	s.Admin(t, "", "vacation", "set", "--subject", "On leave", "--message-file", away, imapUser)
	if out := s.Admin(t, "", "vacation", "show", imapUser); !strings.Contains(out, "State:   on") {
		t.Errorf("vacation show: %s", out)
	}
	erin := "erin@remote.test"
	if err := smtpFrom(t, s, erin, imapUser, msg(erin, "quarterly report")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the out-of-office response", func() bool { return recv.count() >= 3 })
	recv.mu.Lock()
	last := recv.received[2]
	recv.mu.Unlock()
	if !bytes.Contains(last, []byte("Subject: On leave\r\n")) || !bytes.Contains(last, []byte("Ivy is on leave.")) || !bytes.Contains(last, []byte("To: <"+erin+">")) {
		t.Errorf("out-of-office response:\n%s", last)
	}
	if subj, _ := subjects("Reports"); !slices.Equal(subj, []string{"monthly report", "quarterly report"}) {
		t.Errorf("Reports after the out-of-office: %v", subj)
	}
	s.Admin(t, "", "vacation", "off", imapUser)
}
