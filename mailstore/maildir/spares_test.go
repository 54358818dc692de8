package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// spareCount is how many spares the account holds for a mailbox once its
// filler is done.
func spareCount(t *testing.T, a *account, id int64) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.spares.mu.Lock()
		b := a.spares.boxes[id]
		n, filling := 0, false
		if b != nil {
			n, filling = len(b.files), b.filling
		}
		a.spares.mu.Unlock()
		if !filling || time.Now().After(deadline) {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSpareFiles: a mailbox that receives two messages in a row gets
// unnamed spare files; the next deliveries are written into them and read
// back byte for byte, with nothing left in tmp/; closing the account or
// deleting the mailbox closes the spares (no descriptor is kept) and a
// deleted mailbox's directory goes whole.
func TestSpareFiles(t *testing.T) {
	if !sparesSupported {
		t.Skip("no unnamed files on this OS")
	}
	ctx := context.Background()
	s, dir := newTestStore(t, Options{})
	fds0 := openFDs(t)
	acc := openAccount(t, s, testAccount)
	a := acc.(*handle).a
	mb, err := acc.CreateMailbox(ctx, "Lists", "")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := acc.Append(ctx, "Lists", strings.NewReader(testMessage(fmt.Sprint("warm ", i), "x")), mailstore.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := spareCount(t, a, mb.ID); n != spareTarget {
		a.spares.mu.Lock()
		off := a.spares.off
		a.spares.mu.Unlock()
		if off {
			t.Skipf("the file system of %s has no unnamed files", dir)
		}
		t.Fatalf("%d spares after two appends in a row, want %d", n, spareTarget)
	}
	// Deliveries written into spares read back as given, under their UIDs.
	want := map[imap.UID]string{}
	for i := 0; i < 3*spareTarget; i++ {
		body := testMessage(fmt.Sprint("spare ", i), strings.Repeat(fmt.Sprint(i), 100+i))
		res, err := acc.Append(ctx, "Lists", strings.NewReader(body), mailstore.AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want[res.UID] = body
	}
	for uid, body := range want {
		rc, size, err := acc.OpenMessage(ctx, mb.ID, uid)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(got) != body || size != int64(len(body)) {
			t.Fatalf("UID %d: read %d bytes (size %d), err %v; want %d bytes as appended", uid, len(got), size, err, len(body))
		}
	}
	tmp := filepath.Join(a.mailboxDir(mb.ID), "tmp")
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("tmp/ holds %d entries after the deliveries, want none", len(ents))
	}
	if n := spareCount(t, a, mb.ID); n != spareTarget {
		t.Fatalf("%d spares after the deliveries, want %d again", n, spareTarget)
	}

	// Deleting the mailbox closes its spares and removes its directory.
	mbDir := a.mailboxDir(mb.ID)
	if err := acc.DeleteMailbox(ctx, "Lists"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mbDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deleted mailbox's directory: %v, want it gone", err)
	}
	a.spares.mu.Lock()
	_, kept := a.spares.boxes[mb.ID]
	a.spares.mu.Unlock()
	if kept {
		t.Fatal("the deleted mailbox still has spares")
	}

	// INBOX warms up, then the account closes: every spare is closed.
	for i := 0; i < 3; i++ {
		if _, err := acc.Deliver(ctx, strings.NewReader(testMessage(fmt.Sprint("inbox ", i), "y")), mailstore.DeliverOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	inbox, err := acc.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if n := spareCount(t, a, inbox.ID); n != spareTarget {
		t.Fatalf("INBOX: %d spares, want %d", n, spareTarget)
	}
	acc.Close()
	s.Close()
	if fds := openFDs(t); fds > fds0 {
		t.Fatalf("%d descriptors open after the store closed, %d before it opened", fds, fds0)
	}
}

// TestSparesColdMailbox: a mailbox that gets one message now and then
// holds no spares.
func TestSparesColdMailbox(t *testing.T) {
	ctx := context.Background()
	acc, a := newTestAccount(t)
	if _, err := acc.Deliver(ctx, strings.NewReader(testMessage("one", "x")), mailstore.DeliverOptions{}); err != nil {
		t.Fatal(err)
	}
	inbox, _ := acc.Mailbox(ctx, mailstore.Inbox)
	if n := spareCount(t, a, inbox.ID); n != 0 {
		t.Fatalf("%d spares after one delivery, want none", n)
	}
	// The next message comes after spareWarm.
	a.spares.mu.Lock()
	a.spares.boxes[inbox.ID].last = time.Now().Add(-2 * spareWarm)
	a.spares.mu.Unlock()
	if _, err := acc.Deliver(ctx, strings.NewReader(testMessage("two", "x")), mailstore.DeliverOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := spareCount(t, a, inbox.ID); n != 0 {
		t.Fatalf("%d spares after two deliveries %s apart, want none", n, 2*spareWarm)
	}
}

// TestDirSyncFailureRetracts: when the fsync of cur/ fails after the row
// committed, the append fails, its row is expunged (with an event) and its
// file removed, and its UID is never given again.
func TestDirSyncFailureRetracts(t *testing.T) {
	ctx := context.Background()
	acc, a := newTestAccount(t)
	first, err := acc.Deliver(ctx, strings.NewReader(testMessage("first", "x")), mailstore.DeliverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var events []mailstore.Event
	stop := acc.Watch(func(e mailstore.Event) { events = append(events, e) })
	defer stop()
	testHookSyncCur = func(string) error { return errors.New("injected EIO") }
	// Larger than journalMax: fsynced, not journaled (journal.go).
	_, err = acc.Deliver(ctx, strings.NewReader(testMessage("lost", strings.Repeat("x", journalMax))), mailstore.DeliverOptions{})
	testHookSyncCur = nil
	if err == nil || !strings.Contains(err.Error(), "injected EIO") {
		t.Fatalf("Deliver with a failing fsync of cur/: %v, want the error", err)
	}
	st, err := acc.Status(ctx, first.MailboxID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 1 {
		t.Fatalf("%d messages after the failed delivery, want 1", st.Messages)
	}
	var expunged imap.UID
	for _, e := range events {
		if e.Kind == mailstore.EventExpunge {
			expunged = e.UID
		}
	}
	if expunged != first.UID+1 {
		t.Fatalf("events %+v: want the expunge of UID %d", events, first.UID+1)
	}
	cur, _ := os.ReadDir(filepath.Join(a.mailboxDir(first.MailboxID), "cur"))
	if len(cur) != 1 {
		t.Fatalf("cur/ holds %d files, want only the first message's", len(cur))
	}
	next, err := acc.Deliver(ctx, strings.NewReader(testMessage("next", "x")), mailstore.DeliverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if next.UID != first.UID+2 {
		t.Fatalf("next UID %d, want %d (the taken-back UID is not given again)", next.UID, first.UID+2)
	}
}
