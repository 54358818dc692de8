package maildir

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// The two functions below serve backups (package backup), which copy an
// account's index with sqlitedb.Copy and then the message files that copy
// references. They work on such a copy, never on a live index.

// SnapshotFiles lists the message files the index copy at indexPath
// references, as slash-separated paths relative to the account directory
// (maildir/<mailbox-id>/cur/<name>).
func SnapshotFiles(ctx context.Context, indexPath string) ([]string, error) {
	db, err := sqlitedb.OpenFile(indexPath, true)
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT mailbox, file FROM messages ORDER BY mailbox, uid`)
	files, err := sqlitedb.Collect(rows, err, func(row sqlitedb.Scanner) (string, error) {
		var mailbox int64
		var file string
		if err := row.Scan(&mailbox, &file); err != nil {
			return "", err
		}
		return path.Join(maildirDir, strconv.FormatInt(mailbox, 10), file), nil
	})
	if err != nil {
		return nil, fmt.Errorf("maildir: files of %s: %w", indexPath, err)
	}
	return files, nil
}

// TrimSnapshot finishes an index copy at indexPath: the messages whose
// files (named as SnapshotFiles names them) are missing were expunged by
// the live store after the copy was made (rows are deleted before their
// files, never the other way round), so they are expunged from the copy the
// way an expunge does it: each mailbox that loses messages gets a new
// modseq, under which the expunged table records the UIDs (QRESYNC
// VANISHED). The trash table is emptied: its files belong to rows deleted
// before the copy.
func TrimSnapshot(ctx context.Context, indexPath string, missing []string) error {
	db, err := sqlitedb.OpenFile(indexPath, false)
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("maildir: trim %s: %w", indexPath, err)
	}
	defer tx.Rollback()
	// The missing files by mailbox; each such mailbox's rows are read once
	// (no index on file names) and the lost ones deleted by UID, in
	// ascending order as the expunged trigger expects.
	byMailbox := map[int64]map[string]bool{}
	var order []int64
	for _, f := range missing {
		rest, ok := strings.CutPrefix(f, maildirDir+"/")
		id, file, ok2 := strings.Cut(rest, "/")
		mailbox, err := strconv.ParseInt(id, 10, 64)
		if !ok || !ok2 || err != nil {
			return fmt.Errorf("maildir: trim %s: not a message file: %q", indexPath, f)
		}
		if byMailbox[mailbox] == nil {
			byMailbox[mailbox] = map[string]bool{}
			order = append(order, mailbox)
		}
		byMailbox[mailbox][file] = true
	}
	for _, mailbox := range order {
		rows, err := tx.QueryContext(ctx, `SELECT uid, file FROM messages WHERE mailbox = ? ORDER BY uid`, mailbox)
		var lost []int64
		err = sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
			var uid int64
			var file string
			if err := row.Scan(&uid, &file); err != nil {
				return err
			}
			if byMailbox[mailbox][file] {
				lost = append(lost, uid)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("maildir: trim %s: %w", indexPath, err)
		}
		if len(lost) == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?`, mailbox); err != nil {
			return fmt.Errorf("maildir: trim %s: %w", indexPath, err)
		}
		for _, uid := range lost {
			if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE mailbox = ? AND uid = ?`, mailbox, uid); err != nil {
				return fmt.Errorf("maildir: trim %s: %w", indexPath, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM trash`); err != nil {
		return fmt.Errorf("maildir: trim %s: %w", indexPath, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("maildir: trim %s: %w", indexPath, err)
	}
	return nil
}
