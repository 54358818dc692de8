package maildir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// messageFilePath is the absolute path of a message's file.
func messageFilePath(t *testing.T, a *account, mailboxID int64, uid imap.UID) string {
	t.Helper()
	var file string
	var size int64
	if err := a.messageFile(context.Background(), mailboxID, uid, &file, &size); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(a.mailboxDir(mailboxID), filepath.FromSlash(file))
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestExpungeUnlinksInBackground: an EXPUNGE answers without waiting for
// its files to be unlinked; the account's unlinker removes them after, the
// trash rows stay until that is durable, the rest of the mailbox is
// untouched, past the backlog a caller unlinks its own files, and closing
// the account waits for the unlinker.
func TestExpungeUnlinksInBackground(t *testing.T) {
	acc, a := newTestAccount(t)
	ctx := context.Background()
	id := inboxID(t, acc)
	var uids []imap.UID
	var paths []string
	for _, subj := range []string{"one", "two", "three", "four"} {
		uid := deliver(t, acc, testMessage(subj, "body of "+subj)).UID
		uids = append(uids, uid)
		paths = append(paths, messageFilePath(t, a, id, uid))
	}

	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	entered := make(chan struct{}, 16)
	testHookUnlink = func() {
		entered <- struct{}{}
		<-release
	}
	t.Cleanup(func() { releaseOnce(); testHookUnlink = nil })

	expunge := func(uid imap.UID) {
		t.Helper()
		if _, err := acc.StoreFlags(ctx, id, imap.UIDSetNum(uid), mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
			t.Fatal(err)
		}
		set := imap.UIDSetNum(uid)
		got, err := acc.Expunge(ctx, id, &set)
		if err != nil || len(got) != 1 || got[0] != uid {
			t.Fatalf("Expunge(%d) = %v, %v", uid, got, err)
		}
	}
	// A session that has opened a message has the mailbox's file names
	// at hand (openahead.go).
	if got := readMessage(t, acc, id, uids[0]); got != testMessage("one", "body of one") {
		t.Fatalf("message one reads %q", got)
	}
	// The unlinker is held: EXPUNGE still answers, the file is still
	// there, the row and the message are gone, also for the session that
	// had its name.
	expunge(uids[0])
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the unlinker never started")
	}
	if !exists(paths[0]) {
		t.Fatal("file removed on the EXPUNGE's path")
	}
	if _, _, err := acc.OpenMessage(ctx, id, uids[0]); !errors.Is(err, mailstore.ErrNoSuchMessage) {
		t.Fatalf("expunged message opens: %v, want ErrNoSuchMessage", err)
	}
	if got := readMessage(t, acc, id, uids[1]); got != testMessage("two", "body of two") {
		t.Fatalf("message two reads %q", got)
	}

	// Past the backlog, the caller unlinks its own files at once.
	a.unlink.mu.Lock()
	filler := make([]string, unlinkBacklog)
	for i := range filler {
		filler[i] = "cur/missing-" + string(rune('a'+i%26))
	}
	a.unlink.queue = append(a.unlink.queue, filler...)
	a.unlink.mu.Unlock()
	expunge(uids[1])
	if exists(paths[1]) {
		t.Fatal("past the backlog the EXPUNGE left its file")
	}

	// Closing waits for the unlinker, which then finishes.
	closed := make(chan error, 1)
	go func() { closed <- a.close() }()
	select {
	case err := <-closed:
		t.Fatalf("the account closed with its unlinker held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	releaseOnce()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("close never returned")
	}
	if exists(paths[0]) {
		t.Fatal("the unlinker left the expunged file")
	}
	for _, p := range paths[2:] {
		if !exists(p) {
			t.Fatalf("%s removed, never expunged", p)
		}
	}
}
