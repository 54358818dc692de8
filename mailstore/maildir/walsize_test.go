package maildir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// TestWALBounded: the index's WAL is checkpointed and cut back often enough
// that it stays small beside the mail, however many messages arrive.
func TestWALBounded(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	acc, err := s.Open(context.Background(), "wal@example.org")
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	const n = 300 // about 1,800 WAL pages without checkpoints
	for range n {
		if _, err := acc.Deliver(context.Background(), strings.NewReader(message10K), mailstore.DeliverOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	wals, err := filepath.Glob(filepath.Join(dir, "*", indexFile+"-wal"))
	if err != nil || len(wals) != 1 {
		t.Fatalf("WAL files: %v, %v", wals, err)
	}
	fi, err := os.Stat(wals[0])
	if err != nil {
		t.Fatal(err)
	}
	// One checkpoint interval plus the frames of one last transaction.
	if max := int64(walKeepBytes + 64<<10); fi.Size() > max {
		t.Errorf("WAL is %d bytes after %d deliveries, want at most %d", fi.Size(), n, max)
	}
}

// TestWALFoldedAtRest: once deliveries pause, the WAL is checkpointed into
// the index and truncated, and the messages are all there.
func TestWALFoldedAtRest(t *testing.T) {
	s, dir := newTestStore(t, Options{})
	acc := openAccount(t, s, "fold@example.org")
	for range 20 {
		deliver(t, acc, message10K)
	}
	wal := filepath.Join(dir, accountDirName("fold@example.org"), indexFile+"-wal")
	waitWALEmpty(t, wal)
	in, _ := acc.Mailbox(context.Background(), "INBOX")
	st, err := acc.Status(context.Background(), in.ID)
	if err != nil || st.Messages != 20 {
		t.Fatalf("INBOX after the fold: %+v, %v", st, err)
	}

	// A reader (here another process's connection) holding the WAL makes
	// the fold give up without waiting; it folds after the reader ends.
	db, err := sqlitedb.OpenFile(filepath.Join(dir, accountDirName("fold@example.org"), indexFile), true)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deliver(t, acc, message10K)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM messages`).Scan(&n); err != nil || n != 21 {
		t.Fatalf("reader sees %d messages (%v)", n, err)
	}
	deliver(t, acc, message10K)
	tx.Rollback()
	waitWALEmpty(t, wal)
}

func waitWALEmpty(t *testing.T, wal string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		fi, err := os.Stat(wal)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("WAL still %d bytes a minute after the last write", fi.Size())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFoldWaitsOutThePause: the fold's timer, armed once, coming due while
// the last write is recent folds nothing and stays armed; once the pause
// has passed it folds.
func TestFoldWaitsOutThePause(t *testing.T) {
	s, dir := newTestStore(t, Options{})
	acc := openAccount(t, s, "pause@example.org")
	a := acc.(*handle).a
	wal := filepath.Join(dir, accountDirName("pause@example.org"), indexFile+"-wal")
	deliver(t, acc, message10K)
	waitWALEmpty(t, wal)

	deliver(t, acc, message10K)
	a.wmu.Lock()
	armed := a.foldArmed
	a.lastWrite = time.Now().Add(time.Hour) // a write that stays recent
	a.wmu.Unlock()
	if !armed {
		t.Fatal("a commit left the fold unarmed")
	}
	a.foldDue()
	fi, err := os.Stat(wal)
	if err != nil {
		t.Fatal(err)
	}
	a.wmu.Lock()
	armed = a.foldArmed
	a.lastWrite = time.Now().Add(-time.Hour) // the pause has passed
	a.wmu.Unlock()
	if fi.Size() == 0 || !armed {
		t.Fatalf("due during the pause: WAL %d bytes, armed %v; want the WAL kept and the fold still armed", fi.Size(), armed)
	}
	a.foldDue()
	waitWALEmpty(t, wal)
	in, _ := acc.Mailbox(context.Background(), "INBOX")
	if st, err := acc.Status(context.Background(), in.ID); err != nil || st.Messages != 2 {
		t.Fatalf("INBOX after the fold: %+v, %v", st, err)
	}
}
