package maildir

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// The index's WAL is checkpointed every walCheckpointPages pages (SQLite's
// default is 1,000, 4 MiB) and cut back to walKeepBytes after a checkpoint
// (SQLite's default keeps it at its largest size for good). Each delivery
// appends about six 4 KiB pages to the WAL. A checkpoint costs the commit
// that triggers it two fsyncs (the WAL and the main file) while the
// account's writers wait: every 512 pages, about one per 85 deliveries,
// instead of one per 20 at 128 pages, which under imaptest's stress load
// took EXPUNGE from about 5 to 4 ms and APPEND from 10 to 9 (imaptest's
// averages, three alternating runs each).
//
// Once an account's writes pause for walFoldAfter, the WAL is checkpointed
// and truncated to nothing (foldWAL): what an account holds at rest is its
// index and mail, not up to 2 MiB of WAL beside them. A busy account holds
// at most that much until its next pause. A burst of deliveries pays one
// checkpoint at its end, off every delivery's path; a delivery arriving
// while it runs waits for it (a few milliseconds).
const (
	walCheckpointPages = 512
	walKeepBytes       = walCheckpointPages * 4096
	walFoldAfter       = 100 * time.Millisecond
)

// indexOptions open an account's index: free pages can be given back
// (foldWAL), as the journal's bodies come and go (journal.go).
var indexOptions = sqlitedb.Options{IncrementalVacuum: true}

// armFold (re)starts the pause after a commit; the caller holds wmu.
//
// A waiting timer is never moved: the Go runtime marks a timer moved while
// it waits, and when the earliest such one comes due it scans every timer
// of its processor to re-sort them. With 10,000 IDLE connections, each
// with its deadlines' timers, that scan took 7 ms of CPU whenever the fold
// timer, moved by every commit, came due (perf, one delivery waking one
// IDLE connection). So a commit only notes its time; the timer, armed once,
// comes due and waits the rest of the pause if a commit came meanwhile
// (Reset on a timer that has fired adds it anew).
func (a *account) armFold() {
	a.lastWrite = time.Now()
	if a.foldArmed {
		return
	}
	a.foldArmed = true
	if a.fold == nil {
		a.fold = time.AfterFunc(walFoldAfter, a.foldDue)
		return
	}
	a.fold.Reset(walFoldAfter)
}

// foldDue is the fold timer's function: it folds the WAL once writes have
// paused for walFoldAfter, or waits the rest of the pause.
func (a *account) foldDue() {
	a.wmu.Lock()
	if a.db == nil || a.gone.Load() {
		a.foldArmed = false
		a.wmu.Unlock()
		return
	}
	if rest := walFoldAfter - time.Since(a.lastWrite); rest > 0 {
		a.fold.Reset(rest)
		a.wmu.Unlock()
		return
	}
	a.foldArmed = false
	a.wmu.Unlock()
	a.foldWAL()
}

// foldWAL checkpoints the WAL into the index and truncates it. It never
// waits for readers or another process's writer (the busy timeout is 0 for
// it, so SQLite does what it can without waiting): if the WAL could not be
// emptied, it tries again after the next pause instead of holding up the
// writer.
func (a *account) foldWAL() {
	if _, synced := a.journalBusy(); synced {
		// Synced journal rows go first, so their pages are given back
		// below. (The write arms the fold again: a no-op then.)
		if err := a.releaseSynced(context.Background(), false); err != nil {
			a.log.Warn("delete synced journal rows", "err", err)
		}
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.db == nil || a.gone.Load() {
		return
	}
	ctx := context.Background()
	c, err := a.db.Write.Conn(ctx)
	if err != nil {
		a.log.Warn("checkpoint index WAL", "err", err)
		return
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		a.log.Warn("checkpoint index WAL", "err", err)
		return
	}
	// Pages freed since (journal rows deleted, messages expunged) go
	// back to the file system, in an index made with auto_vacuum.
	if rows, err := c.QueryContext(ctx, "PRAGMA incremental_vacuum"); err == nil {
		for rows.Next() {
		}
		rows.Close()
	}
	var busy, logPages, done int
	err = c.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logPages, &done)
	if _, rerr := c.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", sqlitedb.BusyTimeoutMillis)); rerr != nil {
		// A connection left without its busy timeout would fail writes
		// that meet another process's: drop it, the pool opens another.
		c.Raw(func(any) error { return driver.ErrBadConn })
		a.log.Warn("checkpoint index WAL", "err", rerr)
	}
	switch {
	case err != nil:
		a.log.Warn("checkpoint index WAL", "err", err)
	case busy != 0:
		a.armFold()
	}
}

// limitWAL sets the write connection's checkpoint interval and WAL size
// limit (both are per connection; only the writer checkpoints).
func (a *account) limitWAL(ctx context.Context) error {
	if _, err := a.db.Write.ExecContext(ctx, fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", walCheckpointPages)); err != nil {
		return err
	}
	_, err := a.db.Write.ExecContext(ctx, fmt.Sprintf("PRAGMA journal_size_limit = %d", walKeepBytes))
	return err
}
