package queue

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Finishing a message is not fsync'd: record commits the remote's reply
// with SQLite synchronous=NORMAL, written to the WAL but not synced, which a
// process crash (kill -9) keeps and only power loss or a kernel crash can
// undo. An undone finish leaves the message pending, and it is delivered
// again at start-up: a duplicate, never a loss. So that an undone finish
// never meets a missing spool file (which would bounce a delivered
// message), the spool files of finished messages are removed only once
// their commit is durable: the reaper collects them for up to reapDelay,
// fsyncs the WAL (which makes every commit before it durable, whatever
// its synchronous mode), then unlinks them. A crash before that leaves
// files without rows, which Open's reconciliation removes. One fsync less
// per relayed message with a spool file (the spool file, the spool
// directory and the Enqueue commit stay fsync'd: the 250 for the client
// still follows a durable message). A message kept in its row has no file
// to reap.
const (
	reapDelay = 50 * time.Millisecond
	reapBatch = 256 // reap at once when this many files wait
)

// reaper holds the spool files of finished messages until their commit is
// durable.
type reaper struct {
	// run is held by a reap from start to end, so that closeReaper
	// returns after the last one.
	run    sync.Mutex
	mu     sync.Mutex
	ids    []string
	timer  *time.Timer
	closed bool
}

// dropSpool removes id's spool file once the commit that finished it is
// durable.
func (q *Queue) dropSpool(id string) {
	r := &q.reap
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		os.Remove(q.spoolPath(id))
		return
	}
	r.ids = append(r.ids, id)
	now := len(r.ids) >= reapBatch
	if !now && r.timer == nil {
		r.timer = time.AfterFunc(reapDelay, q.reapNow)
	}
	r.mu.Unlock()
	if now {
		q.reapNow()
	}
}

// reapNow makes the finishing commits durable and removes their spool
// files. If the WAL cannot be synced the files stay (reconciliation at the
// next start removes those whose rows are gone).
func (q *Queue) reapNow() {
	r := &q.reap
	r.run.Lock()
	defer r.run.Unlock()
	r.mu.Lock()
	ids := r.ids
	r.ids = nil
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	if err := syncWAL(q.dbPath); err != nil {
		q.log.Error("queue: sync the database before removing spool files; they stay until the next start", "files", len(ids), "err", err)
		return
	}
	for _, id := range ids {
		if q.recycle(id) {
			continue
		}
		if err := os.Remove(q.spoolPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			q.log.Warn("queue: remove spool file", "queueid", id, "err", err)
		}
	}
}

// maxRecycled bounds the emptied spool files kept for reuse.
const maxRecycled = 256

// recycle moves id's spool file, whose finish is durable, to tmp/ and
// empties it for the next Enqueue, which then writes into an existing
// file instead of creating one: on ext4 creating a file while many were
// recently deleted searches the inode bitmap past them, which profiles
// of a relay showed as the largest part of an Enqueue's CPU. False: no
// room, or the file could not be moved; the caller removes it.
//
// For a crash this is a removal: a file in tmp/ is garbage at start-up
// (Open removes them), and should power loss undo the rename, the file
// is back in queue/ without a row and reconciliation removes it.
func (q *Queue) recycle(id string) bool {
	q.reap.mu.Lock()
	closed := q.reap.closed
	q.reap.mu.Unlock()
	if closed || len(q.recycled) >= cap(q.recycled) {
		return false
	}
	path := filepath.Join(q.tmpDir, "r-"+newID())
	if err := os.Rename(q.spoolPath(id), path); err != nil {
		return false
	}
	if err := os.Truncate(path, 0); err != nil {
		os.Remove(path)
		return true
	}
	select {
	case q.recycled <- path:
	default:
		os.Remove(path)
	}
	return true
}

// closeReaper reaps what waits; files dropped later are removed at once
// (Close has made every commit durable by then).
func (q *Queue) closeReaper() {
	q.reapNow()
	q.reap.mu.Lock()
	q.reap.closed = true
	q.reap.mu.Unlock()
	// A reap the timer began meanwhile has ended once run is free; no
	// file is recycled after it.
	q.reap.run.Lock()
	defer q.reap.run.Unlock()
	for {
		select {
		case path := <-q.recycled:
			os.Remove(path)
		default:
			return
		}
	}
}

// syncWAL fsyncs the WAL of the database at path: every transaction
// committed before is durable after it (a checkpoint syncs the database
// file before the WAL is reused, so what left the WAL is durable too). No
// WAL file means no open connection: the last one to close checkpointed
// and synced the database.
func syncWAL(path string) error {
	f, err := os.Open(path + "-wal")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// relaxedTx runs fn in a write transaction committed with
// synchronous=NORMAL; the connection goes back to FULL, or is dropped.
func (q *Queue) relaxedTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	conn, err := q.db.Write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return err
	}
	defer func() {
		if _, err := conn.ExecContext(context.Background(), `PRAGMA synchronous = FULL`); err != nil {
			q.log.Error("queue: restore synchronous = FULL; dropping the connection", "err", err)
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
