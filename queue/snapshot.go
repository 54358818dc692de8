package queue

import (
	"context"
	"fmt"
	"path"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// The two functions below serve backups (package backup), which copy
// queue.sqlite with sqlitedb.Copy and then the spool files that copy
// references. They work on such a copy, never on the live database.

// SnapshotFiles lists the spool files the queue database copy at dbPath
// references, as slash-separated paths relative to the data directory
// (queue/<id>): those of messages not kept in their rows.
func SnapshotFiles(ctx context.Context, dbPath string) ([]string, error) {
	db, err := sqlitedb.OpenFile(dbPath, true)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT id FROM messages WHERE body IS NULL ORDER BY id`)
	ids, err := sqlitedb.Collect(rows, err, sqlitedb.Value[string])
	if err != nil {
		return nil, fmt.Errorf("queue: files of %s: %w", dbPath, err)
	}
	files := make([]string, len(ids))
	for i, id := range ids {
		files[i] = path.Join("queue", id)
	}
	return files, nil
}

// TrimSnapshot removes from the database copy at dbPath the entries whose
// spool files (named as SnapshotFiles names them) are missing: the live
// queue finished them after the copy was made (it deletes the row, then
// the file). Kept, they would fail at delivery with a false bounce.
func TrimSnapshot(ctx context.Context, dbPath string, missing []string) error {
	if len(missing) == 0 {
		return nil
	}
	db, err := sqlitedb.OpenFile(dbPath, false)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("queue: trim %s: %w", dbPath, err)
	}
	defer tx.Rollback()
	for _, f := range missing {
		dir, id := path.Split(f)
		if dir != "queue/" {
			return fmt.Errorf("queue: trim %s: not a spool file: %q", dbPath, f)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE id = ?`, id); err != nil {
			return fmt.Errorf("queue: trim %s: %w", dbPath, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("queue: trim %s: %w", dbPath, err)
	}
	return nil
}
