package queue

import (
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// TestDSNIntoMaildirInbox runs the 550 case: the DSN must land in the
// local sender's INBOX, with its Return-Path.
func TestDSNIntoMaildirInbox(t *testing.T) {
	remote := newFakeRemote(t)
	remote.script("nobody@b.test", smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "no such user"))
	e := newEnv(t, remote)
	e.enqueue("alice@a.test", "nobody@b.test")
	waitFor(t, "a message in alice's INBOX", func() bool { return len(e.inbox("alice@a.test")) == 1 })
	b := e.inbox("alice@a.test")[0]
	if !strings.HasPrefix(string(b), "Return-Path: <>\r\n") {
		t.Errorf("DSN starts %q", b[:min(len(b), 40)])
	}
	for _, want := range []string{"multipart/report", "Final-Recipient: rfc822; nobody@b.test", "Status: 5.1.1"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("INBOX message lacks %q", want)
		}
	}
}
