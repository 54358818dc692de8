package queue

import (
	"errors"
	"os"
	"testing"
)

// TestReapAfterRecord: a delivered message's row goes at once and its
// spool file once the reaper has synced the database; Close reaps what
// waits.
func TestReapAfterRecord(t *testing.T) {
	remote := newFakeRemote(t)
	e := newEnv(t, remote)
	id := e.enqueue("bob@a.test", "carol@b.test")
	waitFor(t, "message leaves the queue", func() bool { return e.gone(id) })
	if got := remote.count("carol@b.test"); got != 1 {
		t.Fatalf("remote got %d copies, want 1", got)
	}

	// A finished message whose file waits for the reaper: Close removes it.
	const waiting = "00000000000000aa"
	if err := os.WriteFile(e.q.spoolPath(waiting), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.q.reap.mu.Lock()
	e.q.reap.ids = append(e.q.reap.ids, waiting)
	e.q.reap.mu.Unlock()
	path := e.q.spoolPath(waiting)
	e.stop()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("spool file of a finished message kept after Close: %v", err)
	}
}

// TestReapBatch: once reapBatch files wait, the one that fills the batch
// reaps them all before dropSpool returns.
func TestReapBatch(t *testing.T) {
	e := newEnv(t, newFakeRemote(t))
	var ids []string
	for range reapBatch {
		id := newID()
		if err := os.WriteFile(e.q.spoolPath(id), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		e.q.dropSpool(id)
	}
	for _, id := range ids {
		if _, err := os.Stat(e.q.spoolPath(id)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("spool file %s still there after a full batch: %v", id, err)
		}
	}
	if err := syncWAL(e.q.dbPath); err != nil {
		t.Fatal(err)
	}
	if err := syncWAL(e.q.dbPath + ".none"); err != nil {
		t.Errorf("no WAL file: %v, want nil (nothing to sync)", err)
	}
}
