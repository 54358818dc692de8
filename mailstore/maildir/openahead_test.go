package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// TestOpenMessageWindow: OpenMessage reads file names ahead, and what it
// read never outlives the messages: an expunged message is
// ErrNoSuchMessage, one moved away is found in its new mailbox and not in
// the old, a message delivered after the look-ahead is found, and each
// message opens with its own bytes and size.
func TestOpenMessageWindow(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	inbox := inboxID(t, acc)
	other, err := acc.CreateMailbox(ctx, "Other", "")
	if err != nil {
		t.Fatal(err)
	}
	const n = openAhead + 10
	msgs := map[imap.UID]string{}
	for i := 0; i < n; i++ {
		m := testMessage(fmt.Sprintf("m %d", i), fmt.Sprintf("body %d", i))
		msgs[deliver(t, acc, m).UID] = m
	}
	open := func(mailboxID int64, uid imap.UID) (string, error) {
		t.Helper()
		f, size, err := acc.OpenMessage(ctx, mailboxID, uid)
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != size {
			t.Errorf("uid %d: size %d, read %d", uid, size, len(b))
		}
		return string(b), nil
	}
	for uid := imap.UID(1); uid <= n; uid++ {
		if got, err := open(inbox, uid); err != nil || got != msgs[uid] {
			t.Fatalf("uid %d: %q, %v", uid, got, err)
		}
	}

	// The window now covers the last messages: change them behind it.
	if _, err := acc.StoreFlags(ctx, inbox, imap.UIDSetNum(n-1), mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := acc.Expunge(ctx, inbox, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := acc.Move(ctx, inbox, imap.UIDSetNum(n), "Other"); err != nil {
		t.Fatal(err)
	}
	late := testMessage("late", "delivered after the look-ahead")
	lateUID := deliver(t, acc, late).UID
	if _, err := open(inbox, n-1); !errors.Is(err, mailstore.ErrNoSuchMessage) {
		t.Errorf("expunged: %v, want ErrNoSuchMessage", err)
	}
	if _, err := open(inbox, n); !errors.Is(err, mailstore.ErrNoSuchMessage) {
		t.Errorf("moved away: %v, want ErrNoSuchMessage", err)
	}
	if got, err := open(other.ID, 1); err != nil || got != msgs[n] {
		t.Errorf("moved message in its new mailbox: %q, %v", got, err)
	}
	if got, err := open(inbox, lateUID); err != nil || got != late {
		t.Errorf("late delivery: %q, %v", got, err)
	}
	if _, err := open(inbox, lateUID+1); !errors.Is(err, mailstore.ErrNoSuchMessage) {
		t.Errorf("beyond the last UID: %v, want ErrNoSuchMessage", err)
	}
	if got, err := open(inbox, n-2); err != nil || got != msgs[n-2] {
		t.Errorf("uid %d again: %q, %v", n-2, got, err)
	}
}
