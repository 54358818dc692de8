package smtpd

import (
	"bytes"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestMaildirDeliveryByteExact(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.MaxRecipients = 10 })
	c, err := smtp.Dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bodies := []string{
		testMsg,
		"Subject: 8bit\r\n\r\ncaf\xe9 \xa0 na\xefve\r\n",
		"Subject: utf-8\r\n\r\nGrüße, 日本語, 🎉\r\n",
		"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nend\r\n",
	}
	for _, b := range bodies {
		if err := send(t, c, "sender@remote.test", []string{"team@example.org", "bob@example.org"}, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, acct := range []string{"alice@example.org", "bob@example.org"} {
		got := ts.messages(acct)
		if len(got) != len(bodies) {
			t.Fatalf("%s has %d messages, want %d (one per message, aliases deduplicated)", acct, len(got), len(bodies))
		}
		for i, b := range bodies {
			if !bytes.HasPrefix(got[i], []byte("Return-Path: <sender@remote.test>\r\nReceived: from ")) || !bytes.HasSuffix(got[i], []byte(b)) {
				t.Errorf("%s message %d: %q", acct, i, got[i])
			}
		}
	}
}
