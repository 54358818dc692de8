package queue

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

// TestLocalRecipientRetriedIntoMailbox: a recipient in our own domain (what
// smtpd queues when a local copy failed) is delivered into the mailstore,
// never through MX. A full mailbox is a temporary failure that is retried;
// the message lands once there is room. An unknown local user fails
// permanently.
func TestLocalRecipientRetriedIntoMailbox(t *testing.T) {
	ctx := context.Background()
	var quota atomic.Int64
	quota.Store(10) // smaller than any message: full
	store, err := maildir.Open(ctx, filepath.Join(t.TempDir(), "accounts"), maildir.Options{
		Quota: func(context.Context, string) (int64, error) { return quota.Load(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := newEnv(t, newFakeRemote(t), withStore(store), func(o *Options) {
		o.Locals = fakeLocals{users: map[string]bool{"carol@a.test": true}}
	})

	id := e.enqueue("bob@b.test", "carol@a.test", "nobody@a.test")
	waitFor(t, "the first local attempt", func() bool {
		st, reply := e.rcptState(id, "carol@a.test")
		return st == StatePending && strings.Contains(reply, "4.2.2")
	})
	waitFor(t, "the unknown local user to fail", func() bool {
		st, reply := e.rcptState(id, "nobody@a.test")
		return st == StateFailed && strings.Contains(reply, "5.1.1") || st == ""
	})
	quota.Store(0) // room again
	e.advance(time.Hour)
	waitFor(t, "carol's copy to be delivered", func() bool {
		st, _ := e.rcptState(id, "carol@a.test")
		return st == StateDelivered || st == ""
	})

	for _, rcpt := range []string{"carol@a.test", "nobody@a.test"} {
		if n := e.remote.count(rcpt); n != 0 {
			t.Fatalf("%s went out over the network %d times", rcpt, n)
		}
	}

	acct, err := store.Open(ctx, "carol@a.test")
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	mbox, err := acct.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := acct.Snapshot(ctx, mbox.ID)
	if err != nil || len(snap.Messages) != 1 {
		t.Fatalf("carol's INBOX: %d messages, %v", len(snap.Messages), err)
	}
	r, _, err := acct.OpenMessage(ctx, mbox.ID, snap.Messages[0].UID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	if !strings.HasPrefix(string(b), "Return-Path: <bob@b.test>\r\n") || !strings.HasSuffix(string(b), testBody) {
		t.Fatalf("stored message:\n%s", b)
	}
}
