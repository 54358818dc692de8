package maildir

import (
	"context"
	"fmt"
	"time"
)

// The index's WAL is checkpointed every walCheckpointPages pages (SQLite's
// default is 1,000, 4 MiB) and cut back to walKeepBytes after a checkpoint
// (SQLite's default keeps it at its largest size for good). Each delivery
// appends about six 4 KiB pages to the WAL, so with the defaults the WAL of
// an account that just received 1,000 messages held 4 KiB per message,
// a third of the disk its mail took. Checkpointing every 128 pages costs
// about one more fsync (of the main file) per 20 deliveries.
//
// Once an account's writes pause for walFoldAfter, the WAL is checkpointed
// and truncated to nothing (foldWAL): what an account holds at rest is its
// index and mail, not up to 512 KiB of WAL beside them (after 1,000
// deliveries, half a KiB per message). A burst of deliveries pays one
// checkpoint at its end, off every delivery's path; a delivery arriving
// while it runs waits for it (a few milliseconds).
const (
	walCheckpointPages = 128
	walKeepBytes       = walCheckpointPages * 4096
	walFoldAfter       = 100 * time.Millisecond
)

// armFold (re)starts the pause after a commit; the caller holds wmu.
func (a *account) armFold() {
	if a.fold == nil {
		a.fold = time.AfterFunc(walFoldAfter, a.foldWAL)
		return
	}
	a.fold.Reset(walFoldAfter)
}

// foldWAL checkpoints the WAL into the index and truncates it. A reader
// still using the WAL makes the checkpoint partial and the truncation
// wait for the next pause; that is not an error.
func (a *account) foldWAL() {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.db == nil || a.gone.Load() {
		return
	}
	if _, err := a.db.Write.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		a.log.Warn("checkpoint index WAL", "err", err)
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
