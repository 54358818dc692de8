package queue

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

// TestDSNIntoMaildirInbox runs the 550 case against the real store: the
// DSN must land in the local sender's INBOX.
func TestDSNIntoMaildirInbox(t *testing.T) {
	ctx := context.Background()
	store, err := maildir.Open(ctx, filepath.Join(t.TempDir(), "accounts"), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	remote := newFakeRemote(t)
	remote.script("nobody@b.test", smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "no such user"))
	e := newEnv(t, remote, withStore(store))
	e.enqueue("alice@a.test", "nobody@b.test")

	acct, err := store.Open(ctx, "alice@a.test")
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	mbox, err := acct.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	var snap mailstore.Snapshot
	waitFor(t, "a message in alice's INBOX", func() bool {
		snap, err = acct.Snapshot(ctx, mbox.ID)
		return err == nil && len(snap.Messages) == 1
	})
	r, _, err := acct.OpenMessage(ctx, mbox.ID, snap.Messages[0].UID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	for _, want := range []string{"multipart/report", "Final-Recipient: rfc822; nobody@b.test", "Status: 5.1.1"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("INBOX message lacks %q", want)
		}
	}
}
