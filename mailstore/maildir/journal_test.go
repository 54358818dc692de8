package maildir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// syncHook replaces the journal's syncs for the test.
func syncHook(t *testing.T, fn func(paths []string) error) {
	testHookSyncFiles = fn
	t.Cleanup(func() { testHookSyncFiles = nil })
}

// pendingRows counts an account's journal rows.
func pendingRows(t *testing.T, acc mailstore.Account) int {
	t.Helper()
	var n int
	if err := acc.(*handle).a.db.Write.QueryRow(`SELECT count(*) FROM pending`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// messageFile is the absolute path of a message's file.
func messageFile(t *testing.T, acc mailstore.Account, mbox int64, uid imap.UID) string {
	t.Helper()
	a := acc.(*handle).a
	var file string
	if err := a.db.Write.QueryRow(`SELECT file FROM messages WHERE mailbox = ? AND uid = ?`, mbox, uid).Scan(&file); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(a.mailboxDir(mbox), filepath.FromSlash(file))
}

// TestJournalSmallAndLarge: a message of up to journalMax bytes is
// journaled (its bytes in a pending row, its file named ",J"); a larger one
// is fsynced as before and leaves no pending row. Once synced, the next
// write deletes the pending rows.
func TestJournalSmallAndLarge(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	var synced [][]string
	var mu sync.Mutex
	release := make(chan struct{})
	syncHook(t, func(paths []string) error {
		<-release
		mu.Lock()
		synced = append(synced, slices.Clone(paths))
		mu.Unlock()
		return nil
	})

	small := deliver(t, acc, testMessage("small", "x"))
	big := deliver(t, acc, testMessage("big", strings.Repeat("y", journalMax)))
	if n := pendingRows(t, acc); n != 1 {
		t.Fatalf("%d pending rows after a small and a large delivery, want 1", n)
	}
	smallFile := messageFile(t, acc, small.MailboxID, small.UID)
	if !isJournalName(smallFile) || isJournalName(messageFile(t, acc, big.MailboxID, big.UID)) {
		t.Fatalf("names: small %s, big %s", smallFile, messageFile(t, acc, big.MailboxID, big.UID))
	}
	close(release)
	if err := s.journal.flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(synced) != 1 || !slices.Equal(synced[0], []string{smallFile}) {
		t.Fatalf("synced %v, want [[%s]]", synced, smallFile)
	}
	mu.Unlock()
	// A relaxed write (flags) leaves the synced rows, and so does a
	// durable one that may write nothing (it need not flush). A delivery's
	// commit ends with the device flush they wait for, so the durable
	// write after it takes them.
	if _, err := acc.StoreFlags(ctx, small.MailboxID, imap.UIDSetNum(small.UID), mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen}, 0); err != nil {
		t.Fatal(err)
	}
	if n := pendingRows(t, acc); n != 1 {
		t.Fatalf("%d pending rows after the sync and a flag change, want 1", n)
	}
	if _, err := acc.CreateMailbox(ctx, "After", ""); err != nil {
		t.Fatal(err)
	}
	if n := pendingRows(t, acc); n != 1 {
		t.Fatalf("%d pending rows after the sync and a mailbox creation, want 1", n)
	}
	deliver(t, acc, testMessage("big 2", strings.Repeat("y", journalMax)))
	if n := pendingRows(t, acc); n != 1 {
		t.Fatalf("%d pending rows after the sync and one delivery, want 1", n)
	}
	if _, err := acc.CreateMailbox(ctx, "After2", ""); err != nil {
		t.Fatal(err)
	}
	if n := pendingRows(t, acc); n != 0 {
		t.Fatalf("%d pending rows after the sync, a delivery and a durable write, want 0", n)
	}
	if got := readMessage(t, acc, small.MailboxID, small.UID); got != testMessage("small", "x") {
		t.Fatalf("small message read back as %q", got)
	}
}

// TestJournalBatches: steady deliveries are synced in batches, at most one
// sync per journalSyncEvery (plus the first), not one per delivery or two.
func TestJournalBatches(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	var mu sync.Mutex
	syncs, files := 0, 0
	syncHook(t, func(paths []string) error {
		mu.Lock()
		syncs++
		files += len(paths)
		mu.Unlock()
		return nil
	})
	const n = 40
	start := time.Now()
	for i := 0; i < n; i++ {
		deliver(t, acc, testMessage(fmt.Sprintf("m%d", i), "x"))
	}
	if err := s.journal.flush(ctx); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	if files != n {
		t.Fatalf("%d files synced, want %d", files, n)
	}
	// The flush may add one sync, and a sync starts journalSyncEvery
	// after the end of the one before: a bound the clock cannot break.
	if max := 2 + int(elapsed/journalSyncEvery); syncs > max {
		t.Fatalf("%d syncs for %d deliveries in %v, want at most %d", syncs, n, elapsed, max)
	}
}

// TestJournalCopyWaitsForSync: COPY hard-links files, so it must not link
// a journaled file before the file is durable.
func TestJournalCopyWaitsForSync(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	var mu sync.Mutex
	var synced []string
	syncHook(t, func(paths []string) error {
		mu.Lock()
		synced = append(synced, paths...)
		mu.Unlock()
		return nil
	})
	if _, err := acc.CreateMailbox(ctx, "Copied", ""); err != nil {
		t.Fatal(err)
	}
	res := deliver(t, acc, testMessage("copied", "x"))
	src := messageFile(t, acc, res.MailboxID, res.UID)
	if _, err := acc.Copy(ctx, res.MailboxID, imap.UIDSetNum(res.UID), "Copied"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(synced, src) {
		t.Fatalf("COPY returned before %s was synced (synced: %v)", src, synced)
	}
}

// TestJournalCopyFailsWithoutSync: when the files cannot be synced, COPY of
// a journaled message fails rather than link a file that may not survive.
func TestJournalCopyFailsWithoutSync(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	syncHook(t, func([]string) error { return errors.New("injected EIO") })
	res := deliver(t, acc, testMessage("stuck", "x"))
	_, err := acc.Copy(ctx, res.MailboxID, imap.UIDSetNum(res.UID), "INBOX")
	if err == nil || !strings.Contains(err.Error(), "injected EIO") {
		t.Fatalf("Copy with failing syncs: %v, want the sync's error", err)
	}
	if got := readMessage(t, acc, res.MailboxID, res.UID); got != testMessage("stuck", "x") {
		t.Fatalf("message read back as %q", got)
	}
}

// TestJournalRecovery plays a power loss: files are never synced, the
// store stops, and the files of journaled messages come back missing,
// empty or zeroed, beside the file of a journaled delivery that never
// committed (garbage) and a plain file dropped in by hand. The next open
// restores every acknowledged message from the index, byte for byte,
// removes the uncommitted one, indexes the plain one, and leaves no
// pending row.
func TestJournalRecovery(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestStore(t, Options{})
	syncHook(t, func([]string) error { return errors.New("injected: power lost") })
	acc := openAccount(t, s, testAccount)
	var msgs []string
	var files []string
	var uids []imap.UID
	var inbox int64
	for i := range 5 {
		m := testMessage("kept "+strings.Repeat("z", i), strings.Repeat("body ", 100*i+1))
		res := deliver(t, acc, m)
		msgs = append(msgs, m)
		uids = append(uids, res.UID)
		files = append(files, messageFile(t, acc, res.MailboxID, res.UID))
		inbox = res.MailboxID
	}
	// An expunged message's pending row must not bring it back.
	gone := deliver(t, acc, testMessage("expunged", "x"))
	goneFile := messageFile(t, acc, gone.MailboxID, gone.UID)
	if _, err := acc.StoreFlags(ctx, gone.MailboxID, imap.UIDSetNum(gone.UID), mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := acc.Expunge(ctx, gone.MailboxID, nil); err != nil {
		t.Fatal(err)
	}
	if n := pendingRows(t, acc); n != 6 {
		t.Fatalf("%d pending rows before the stop, want 6", n)
	}
	acc.Close()
	s.Close()

	// What a power loss can leave of files that were never synced.
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(files[1], 0); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(files[2])
	if err := os.WriteFile(files[2], make([]byte, fi.Size()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files[3], []byte(msgs[3][:len(msgs[3])/2]), 0o600); err != nil {
		t.Fatal(err)
	}
	cur := filepath.Dir(files[0])
	torn := filepath.Join(cur, journalName(uniqueName(), 40))
	if err := os.WriteFile(torn, bytes.Repeat([]byte{0}, 40), 0o600); err != nil {
		t.Fatal(err)
	}
	dropped := testMessage("dropped in", "by hand")
	if err := os.WriteFile(filepath.Join(cur, curName(uniqueName(), int64(len(dropped)))), []byte(dropped), 0o600); err != nil {
		t.Fatal(err)
	}

	testHookSyncFiles = nil
	s2, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	acc2 := openAccount(t, s2, testAccount)
	for i, uid := range uids {
		if got := readMessage(t, acc2, inbox, uid); got != msgs[i] {
			t.Errorf("message %d (uid %d) after recovery: %d bytes, want %d", i, uid, len(got), len(msgs[i]))
		}
	}
	if _, err := os.Stat(torn); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the uncommitted journaled file is still there: %v", err)
	}
	if _, err := os.Stat(goneFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the expunged message's file came back: %v", err)
	}
	st, err := acc2.Status(ctx, inbox)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 6 { // the five, and the one dropped in
		t.Errorf("%d messages after recovery, want 6", st.Messages)
	}
	if st.UIDNext <= gone.UID {
		t.Errorf("UIDNEXT %d after recovery gives the expunged UID %d again", st.UIDNext, gone.UID)
	}
	if n := pendingRows(t, acc2); n != 0 {
		t.Errorf("%d pending rows after recovery, want 0", n)
	}
}

// TestJournalCleanClose: a store closed normally syncs its journaled files
// and leaves no pending row.
func TestJournalCleanClose(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	for range 3 {
		deliver(t, acc, testMessage("quick", "x"))
	}
	acc.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	// Opened without recovery's help: the rows must already be gone.
	a := newAccount(s2, testAccount)
	if err := a.open(ctx, false); err != nil {
		t.Fatal(err)
	}
	defer a.close()
	var n int
	if err := a.db.Write.QueryRow(`SELECT count(*) FROM pending`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d pending rows after a clean close, want 0", n)
	}
}

// TestJournalGivesPagesBack: the bodies journaled rows held go back to the
// file system once the WAL folds (the index is made with auto_vacuum), so
// the journal costs no disk at rest.
func TestJournalGivesPagesBack(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	a := acc.(*handle).a
	for i := range 100 {
		deliver(t, acc, testMessage("page", strings.Repeat("x", 10000+i)))
	}
	if err := s.journal.flush(ctx); err != nil {
		t.Fatal(err)
	}
	a.foldWAL() // deletes the synced rows, gives their pages back, checkpoints
	var free, vacuum int
	if err := a.db.Write.QueryRow(`PRAGMA freelist_count`).Scan(&free); err != nil {
		t.Fatal(err)
	}
	if err := a.db.Write.QueryRow(`PRAGMA auto_vacuum`).Scan(&vacuum); err != nil {
		t.Fatal(err)
	}
	if n := pendingRows(t, acc); n != 0 || free != 0 || vacuum != 2 {
		t.Fatalf("after the folds: %d pending rows, %d free pages, auto_vacuum %d; want 0, 0, 2", n, free, vacuum)
	}
}
