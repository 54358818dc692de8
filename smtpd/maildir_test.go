package smtpd

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

// withMaildir makes the server deliver into a real maildir store in a temp
// dir; the returned function reads an account's INBOX back.
func withMaildir(t testing.TB) (func(*Options), func(account string) [][]byte) {
	t.Helper()
	st, err := maildir.Open(context.Background(), t.TempDir(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	read := func(account string) [][]byte {
		t.Helper()
		ctx := context.Background()
		a, err := st.Open(ctx, account)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		mb, err := a.Mailbox(ctx, mailstore.Inbox)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := a.Snapshot(ctx, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for _, m := range snap.Messages {
			r, _, err := a.OpenMessage(ctx, mb.ID, m.UID)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	return func(o *Options) { o.Store = st }, read
}

func TestMaildirDeliveryByteExact(t *testing.T) {
	opt, read := withMaildir(t)
	ts := newTestServer(t, opt, func(o *Options) { o.MaxRecipients = 10 })
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
		got := read(acct)
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
