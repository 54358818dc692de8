package maildir

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/metrics"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

func (a *account) flushPending() (armed bool, owed int) {
	a.relaxed.mu.Lock()
	defer a.relaxed.mu.Unlock()
	return a.relaxed.timer != nil, len(a.relaxed.unlink)
}

// TestRelaxedCommits: flag changes and expunges commit relaxed and arm the
// flush; a delivery commits durably; an expunge's file stays until the
// flush removes it and syncs its directory, its trash row until then too,
// and the row goes with the next write after it.
func TestRelaxedCommits(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	a := acc.(*handle).a
	ctx := context.Background()
	id := inboxID(t, acc)
	uid := deliver(t, acc, testMessage("one", "x")).UID
	deliver(t, acc, testMessage("two", "y"))
	if a.relaxed.normal {
		t.Fatal("delivery ran with synchronous=NORMAL")
	}
	if armed, _ := a.flushPending(); armed {
		t.Fatal("flush armed after durable commits only")
	}
	if _, err := acc.StoreFlags(ctx, id, imap.UIDSetNum(uid), mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if armed, _ := a.flushPending(); !a.relaxed.normal || !armed {
		t.Fatalf("after STORE: normal %v, flush armed %v", a.relaxed.normal, armed)
	}
	var file string
	if err := a.db.Read.QueryRowContext(ctx, `SELECT file FROM messages WHERE mailbox = ? AND uid = ?`, id, int64(uid)).Scan(&file); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(a.mailboxDir(id), filepath.FromSlash(file))
	set := imap.UIDSetNum(uid)
	if _, err := acc.Expunge(ctx, id, &set); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("expunged message's file before the flush: %v", err)
	}
	trash := func() int {
		n, err := readValues[int](ctx, a, `SELECT count(*) FROM trash`)
		if err != nil {
			t.Fatal(err)
		}
		return n[0]
	}
	if _, owed := a.flushPending(); owed != 1 || trash() != 1 {
		t.Fatalf("after EXPUNGE: %d files owed an unlink, %d trash rows", owed, trash())
	}
	// A durable commit does not drop the unlink and sync owed.
	deliver(t, acc, testMessage("three", "z"))
	if armed, owed := a.flushPending(); !armed || owed != 1 || a.relaxed.normal {
		t.Fatalf("after a delivery: armed %v, owed %d, normal %v", armed, owed, a.relaxed.normal)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("expunged message's file after a delivery, before the flush: %v", err)
	}
	a.flushWAL()
	if armed, owed := a.flushPending(); armed || owed != 0 {
		t.Fatalf("after the flush: armed %v, owed %d", armed, owed)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("expunged message's file after the flush: %v", err)
	}
	if n := trash(); n != 1 {
		t.Fatalf("%d trash rows after the flush, before a write; want 1", n)
	}
	if _, err := acc.StoreFlags(ctx, id, imap.UIDSetNum(uid+1), mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen}, 0); err != nil {
		t.Fatal(err)
	}
	if n := trash(); n != 0 {
		t.Fatalf("%d trash rows after the flush and a write", n)
	}
	snap, err := acc.Snapshot(ctx, id)
	if err != nil || len(snap.Messages) != 2 {
		t.Fatalf("snapshot: %v, %d messages", err, len(snap.Messages))
	}
}

// TestWritesStartNoGoroutine: write transactions under a cancellable
// context (every protocol command's) run on the caller's goroutine. A
// sql.Tx would start one per transaction, and one per query that returns
// rows; 100 flag changes and a delivery start almost none.
func TestWritesStartNoGoroutine(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := deliver(t, acc, testMessage("one", "x"))
	created := func() uint64 {
		s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 {
			t.Skip("no goroutine count in runtime/metrics")
		}
		return s[0].Value.Uint64()
	}
	before := created()
	for i := 0; i < 50; i++ {
		for _, op := range []mailstore.FlagOp{mailstore.FlagsAdd, mailstore.FlagsRemove} {
			if _, err := acc.StoreFlags(ctx, m.MailboxID, imap.UIDSetNum(m.UID), op, []imap.Flag{imap.FlagFlagged}, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := created() - before; n > 10 {
		t.Fatalf("100 flag changes started %d goroutines", n)
	}
}

// TestRelaxedUnlinksAtClose: a file an expunge left for the flush is
// removed when the store closes first; the reopened account has the other
// message intact, and its trash row goes with the first write.
func TestRelaxedUnlinksAtClose(t *testing.T) {
	s, dir := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	a := acc.(*handle).a
	ctx := context.Background()
	id := inboxID(t, acc)
	uid := deliver(t, acc, testMessage("gone", "x")).UID
	deliver(t, acc, testMessage("kept", "y"))
	var file string
	if err := a.db.Read.QueryRowContext(ctx, `SELECT file FROM messages WHERE mailbox = ? AND uid = ?`, id, int64(uid)).Scan(&file); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(a.mailboxDir(id), filepath.FromSlash(file))
	if _, err := acc.StoreFlags(ctx, id, imap.UIDSetNum(uid), mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	set := imap.UIDSetNum(uid)
	if _, err := acc.Expunge(ctx, id, &set); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("expunged message's file before close: %v", err)
	}
	acc.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("expunged message's file after close: %v", err)
	}
	s2, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	acc2 := openAccount(t, s2, testAccount)
	defer acc2.Close()
	snap, err := acc2.Snapshot(ctx, id)
	if err != nil || len(snap.Messages) != 1 || snap.Messages[0].UID == uid {
		t.Fatalf("after reopening: %v, %+v", err, snap.Messages)
	}
	// Reconciliation finds the trash row's file gone; the row goes with
	// the next write.
	if _, err := acc2.StoreFlags(ctx, id, imap.UIDSetNum(snap.Messages[0].UID), mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen}, 0); err != nil {
		t.Fatal(err)
	}
	n, err := readValues[int](ctx, acc2.(*handle).a, `SELECT count(*) FROM trash`)
	if err != nil || n[0] != 0 {
		t.Fatalf("trash rows after reopening and a write: %v, %v", n, err)
	}
}
