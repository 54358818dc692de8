package maildir

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/posthouse/posthouse/internal/durable"
)

// Flag changes, \Recent claims and expunges commit without waiting for the
// disk (SQLite synchronous=NORMAL for that transaction): the commit is
// written to the WAL, so it survives the process being killed, but the WAL
// is fsynced by the next durable commit (a delivery, an append, a copy or
// move, a mailbox change) or, at the latest, relaxedFlushAfter later by a
// timer. Power loss may therefore undo the last second of flag changes and
// expunges; it never undoes a delivery, never hands out a UID twice, and
// never corrupts the index (doc.go, Durability).
const relaxedFlushAfter = time.Second

// relaxedState is the account's synchronous setting on its write
// connection and the flush owed for relaxed commits. Fields under wmu,
// except the timer's own lock.
type relaxedState struct {
	normal bool // the write connection runs synchronous=NORMAL

	mu    sync.Mutex
	timer *time.Timer // pending flush of the WAL, nil if none
	// unlink are the trash entries of relaxed commits, whose files the
	// flush removes; unlinkSet holds the same, for unlinkPending.
	unlink    []string
	unlinkSet map[string]bool
}

// setSynchronous sets the write connection c's synchronous mode for the
// next transaction. The caller holds wmu and no transaction. A connection
// that database/sql replaces opens with the DSN's FULL, so a stale normal
// flag only ever errs on the durable side.
func (a *account) setSynchronous(ctx context.Context, c *sql.Conn, durable bool) error {
	if a.relaxed.normal == !durable {
		return nil
	}
	mode := "FULL"
	if !durable {
		mode = "NORMAL"
	}
	if _, err := c.ExecContext(ctx, "PRAGMA synchronous = "+mode); err != nil {
		return err
	}
	a.relaxed.normal = !durable
	return nil
}

// committed notes a commit: a relaxed one arms the flush timer, a durable
// one (whose fsync covered the WAL before it) disarms it unless files are
// owed an unlink.
func (a *account) committed(durable bool) {
	r := &a.relaxed
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case durable && r.timer != nil && len(r.unlink) == 0:
		r.timer.Stop()
		r.timer = nil
	case !durable && r.timer == nil:
		r.timer = time.AfterFunc(relaxedFlushAfter, a.flushWAL)
	}
}

// removeTrashLater is removeTrash after a relaxed commit: the flush
// removes the files, syncs their directories, and only then are the trash
// rows let go (a trash row outlives its file until the unlink is durable,
// or reconciliation would index a file that came back as new mail).
//
// The unlinks wait for the flush, not the command: under imaptest's
// stress they were three fifths of EXPUNGE's CPU (ext4 freeing each
// file), and EXPUNGE answered only after them. Until the flush an expunged
// message's file stays where it was; nothing reads it (its row is gone),
// a crash leaves its trash row for reconciliation to remove it, and power
// loss that undoes the relaxed commit finds the message whole.
func (a *account) removeTrashLater(paths []string) {
	r := &a.relaxed
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unlink = append(r.unlink, paths...)
	if r.unlinkSet == nil {
		r.unlinkSet = map[string]bool{}
	}
	for _, p := range paths {
		r.unlinkSet[p] = true
	}
	if r.timer == nil {
		r.timer = time.AfterFunc(relaxedFlushAfter, a.flushWAL)
	}
}

// unlinkPending reports whether the message file at rel in a mailbox was
// expunged and waits for the flush to be removed. OpenMessage's window
// asks before it opens a name it read earlier: the name still opens until
// the flush, and a missing file was how the window learnt of an expunge.
func (a *account) unlinkPending(mailboxID int64, rel string) bool {
	r := &a.relaxed
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.unlinkSet) > 0 && r.unlinkSet[messagePath(mailboxID, rel)]
}

// takeUnlinks takes the trash entries owed an unlink from r.
func (a *account) takeUnlinks() []string {
	r := &a.relaxed
	r.mu.Lock()
	defer r.mu.Unlock()
	unlink := r.unlink
	r.unlink = nil
	return unlink
}

// unlinkOwed removes the files of trash entries taken by takeUnlinks and
// syncs their directories; it returns the entries removed.
func (a *account) unlinkOwed(unlink []string) (done []string) {
	dirs, done := a.unlinkTrash(unlink)
	// Out of the set only once the names are gone.
	r := &a.relaxed
	r.mu.Lock()
	for _, p := range unlink {
		delete(r.unlinkSet, p)
	}
	r.mu.Unlock()
	for d := range dirs {
		durable.SyncDir(d)
	}
	return done
}

// flushWAL fsyncs the index's WAL, making the relaxed commits in it
// durable, then removes the files of their expunges, syncs those
// directories and lets the trash rows go. The files go only once their
// expunges are durable (they were taken before the fsync, and each was
// committed before it was owed): power loss finds either the message
// whole or its trash row, for reconciliation to remove the file. fsync(2)
// flushes the file whatever descriptor names it.
func (a *account) flushWAL() {
	a.relaxed.mu.Lock()
	a.relaxed.timer = nil
	a.relaxed.mu.Unlock()
	unlink := a.takeUnlinks()
	// A WAL that is gone was checkpointed and removed at close: nothing
	// is owed to it.
	if f, err := os.Open(filepath.Join(a.dir, indexFile+"-wal")); err == nil {
		if err := f.Sync(); err != nil {
			a.log.Error("flush index WAL", "err", err)
		}
		f.Close()
	}
	if done := a.unlinkOwed(unlink); len(done) > 0 {
		a.wmu.Lock()
		a.unlinked = append(a.unlinked, done...)
		a.wmu.Unlock()
	}
}

// stopFlush runs at close (under wmu): closing the index checkpoints the
// WAL into the database file and syncs it; the files owed an unlink are
// removed here, their directories synced, and their trash rows stay for
// the next reconciliation.
func (a *account) stopFlush() {
	r := &a.relaxed
	r.mu.Lock()
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.mu.Unlock()
	a.unlinkOwed(a.takeUnlinks())
}

// writeRelaxed is write for transactions that may be lost to power loss
// (see relaxedFlushAfter): flags, \Recent claims, expunges.
func (a *account) writeRelaxed(ctx context.Context, fn func(w *wtx) error) error {
	return a.writeTx(ctx, false, fn)
}
