package maildir

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
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
	// dirs were unlinked from without a directory fsync; paths are the
	// trash entries whose rows may go once dirs are synced.
	dirs  map[string]bool
	paths []string
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
// one (whose fsync covered the WAL before it) disarms it unless
// directories are owed a sync.
func (a *account) committed(durable bool) {
	r := &a.relaxed
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case durable && r.timer != nil && len(r.dirs) == 0:
		r.timer.Stop()
		r.timer = nil
	case !durable && r.timer == nil:
		r.timer = time.AfterFunc(relaxedFlushAfter, a.flushWAL)
	}
}

// unlinkBacklog is how many expunged files may wait for the account's
// unlinker; past it a relaxed commit's caller unlinks its own files.
const unlinkBacklog = 4096

// unlinker removes the files of relaxed commits' expunges after their
// callers have their answer. An unlink is not quick: under imaptest's
// stress it took 0.9 ms on average (it frees the file's blocks, which on a
// file system mounted with discard means a discard, and waits for any of
// its pages the journal's sync is writing), half of an EXPUNGE's time,
// while the commit had already made the expunge final. The trash
// rows cover the files until they are gone, as before (reconciliation
// removes what a crash left). A queued file still has its name but no
// message: openers that found the name before the expunge ask queued
// before trusting it.
type unlinker struct {
	mu      sync.Mutex
	idle    *sync.Cond // on mu: running became false
	queue   []string
	pending map[string]struct{} // queued or being removed
	npend   atomic.Int64        // len(pending), read without mu
	running bool
	closed  bool // the account is closing: callers unlink their own
}

// queued tells whether a message's file waits for the unlinker or is being
// removed by it. (Only relaxed commits queue: a deleted mailbox's
// directory, a durable commit's trash, is gone before the call returns.)
func (u *unlinker) queued(mailboxID int64, file string) bool {
	if u.npend.Load() == 0 {
		return false
	}
	rel := messagePath(mailboxID, file)
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.pending[rel]
	return ok
}

// removeTrashAsync is removeTrashLater on the account's unlinker.
func (a *account) removeTrashAsync(paths []string) {
	u := &a.unlink
	u.mu.Lock()
	if u.closed || len(u.queue) >= unlinkBacklog {
		u.mu.Unlock()
		a.removeTrashLater(paths)
		return
	}
	u.queue = append(u.queue, paths...)
	if u.pending == nil {
		u.pending = make(map[string]struct{})
	}
	for _, p := range paths {
		u.pending[p] = struct{}{}
	}
	u.npend.Store(int64(len(u.pending)))
	start := !u.running
	u.running = true
	u.mu.Unlock()
	if start {
		go a.unlinkQueued()
	}
}

// unlinkQueued removes queued trash until the queue is empty.
func (a *account) unlinkQueued() {
	u := &a.unlink
	for {
		u.mu.Lock()
		paths := u.queue
		u.queue = nil
		if len(paths) == 0 {
			u.running = false
			if u.idle != nil {
				u.idle.Broadcast()
			}
			u.mu.Unlock()
			return
		}
		u.mu.Unlock()
		if testHookUnlink != nil {
			testHookUnlink()
		}
		a.removeTrashLater(paths)
		u.mu.Lock()
		for _, p := range paths {
			delete(u.pending, p)
		}
		u.npend.Store(int64(len(u.pending)))
		u.mu.Unlock()
	}
}

// testHookUnlink, set by tests only, runs before the unlinker removes a
// batch.
var testHookUnlink func()

// settleUnlinks waits until the unlinker has removed every file queued;
// with closing, later callers unlink their own files.
func (a *account) settleUnlinks(closing bool) {
	u := &a.unlink
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = u.closed || closing
	if u.idle == nil {
		u.idle = sync.NewCond(&u.mu)
	}
	for u.running {
		u.idle.Wait()
	}
}

// removeTrashLater is removeTrash after a relaxed commit: the files go at
// once, but the directories are synced by the flush, and only then are
// the trash rows let go (a trash row outlives its file until the unlink is
// durable, or reconciliation would index a file that came back as new
// mail).
func (a *account) removeTrashLater(paths []string) {
	dirs, done := a.unlinkTrash(paths)
	r := &a.relaxed
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dirs == nil {
		r.dirs = map[string]bool{}
	}
	for d := range dirs {
		r.dirs[d] = true
	}
	r.paths = append(r.paths, done...)
	if r.timer == nil {
		r.timer = time.AfterFunc(relaxedFlushAfter, a.flushWAL)
	}
}

// flushWAL fsyncs the directories unlinked from and the index's WAL,
// making the relaxed commits in it durable, then lets the trash rows of
// those unlinks go. fsync(2) flushes the file whatever descriptor names
// it.
func (a *account) flushWAL() {
	r := &a.relaxed
	r.mu.Lock()
	r.timer = nil
	dirs, paths := r.dirs, r.paths
	r.dirs, r.paths = nil, nil
	r.mu.Unlock()
	for d := range dirs {
		durable.SyncDir(d)
	}
	if len(paths) > 0 {
		a.wmu.Lock()
		a.unlinked = append(a.unlinked, paths...)
		a.wmu.Unlock()
	}
	f, err := os.Open(filepath.Join(a.dir, indexFile+"-wal"))
	if err != nil {
		return // checkpointed and removed at close: nothing owed
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		a.log.Error("flush index WAL", "err", err)
	}
}

// stopFlush runs at close (under wmu): closing the index checkpoints the
// WAL into the database file and syncs it; the directories owed a sync get
// it here, and their trash rows stay for the next reconciliation.
func (a *account) stopFlush() {
	r := &a.relaxed
	r.mu.Lock()
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	dirs := r.dirs
	r.dirs, r.paths = nil, nil
	r.mu.Unlock()
	for d := range dirs {
		durable.SyncDir(d)
	}
}

// writeRelaxed is write for transactions that may be lost to power loss
// (see relaxedFlushAfter): flags, \Recent claims, expunges.
func (a *account) writeRelaxed(ctx context.Context, fn func(w *wtx) error) error {
	return a.writeTx(ctx, false, fn)
}
