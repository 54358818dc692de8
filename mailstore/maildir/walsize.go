package maildir

import (
	"context"
	"fmt"
)

// The index's WAL is checkpointed every walCheckpointPages pages (SQLite's
// default is 1,000, 4 MiB) and cut back to walKeepBytes after a checkpoint
// (SQLite's default keeps it at its largest size for good). Each delivery
// appends about six 4 KiB pages to the WAL, so with the defaults the WAL of
// an account that just received 1,000 messages held 4 KiB per message,
// a third of the disk its mail took. Checkpointing every 128 pages costs
// about one more fsync (of the main file) per 20 deliveries.
const (
	walCheckpointPages = 128
	walKeepBytes       = walCheckpointPages * 4096
)

// limitWAL sets the write connection's checkpoint interval and WAL size
// limit (both are per connection; only the writer checkpoints).
func (a *account) limitWAL(ctx context.Context) error {
	if _, err := a.db.Write.ExecContext(ctx, fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", walCheckpointPages)); err != nil {
		return err
	}
	_, err := a.db.Write.ExecContext(ctx, fmt.Sprintf("PRAGMA journal_size_limit = %d", walKeepBytes))
	return err
}
