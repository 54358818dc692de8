package maildir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// Export reads an account whole for a copy to another backend (posthouse
// admin store copy): its mailboxes with UIDVALIDITY, UIDNEXT,
// HIGHESTMODSEQ, the \Recent claim point and the expunge history, its
// subscriptions, and its messages with their bodies, streamed from the
// files.
//
// The account is first opened through the Store, so its index is brought
// to the current schema and reconciled with its files as at start-up.
// Then everything is read under one read transaction of the index on a
// connection of its own: one commit of the account. Message files never
// change once written, but an expunge by a running server removes them
// after its commit; such a file missing is an error, and Unchanged
// reports any commit made since the read began, so a copy made while the
// server runs fails rather than miss mail. The server should be stopped.
type Export struct {
	dir  string // the account's directory
	h    mailstore.Account
	db   *sql.DB
	tx   *sql.Tx
	acc  mailstore.ImportAccount
	ids  map[string]int64 // mailbox name → ID
	mark string           // the state Unchanged compares with
}

var (
	_ mailstore.ImportSource = (*Export)(nil)
	_ mailstore.Exporter     = (*Store)(nil)
)

// Export opens account name for reading; an account without storage gets
// ErrNoSuchAccount.
func (s *Store) Export(ctx context.Context, name string) (mailstore.ImportSource, error) {
	name, err := mailstore.CheckAccountName(name)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(s.dir, accountDirName(name))
	if _, err := os.Stat(filepath.Join(dir, addressFile)); err != nil {
		return nil, fmt.Errorf("%w: %s", mailstore.ErrNoSuchAccount, name)
	}
	// The handle stays open until Close, so the index stays open in
	// WAL mode (its -wal and -shm files there) for the read-only reader.
	h, err := s.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	db, err := sqlitedb.OpenFile(filepath.Join(dir, indexFile), true)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("maildir: export %s: %w", name, err)
	}
	e := &Export{dir: dir, h: h, db: db, ids: map[string]int64{}}
	if err := e.load(ctx, name); err != nil {
		e.Close()
		return nil, fmt.Errorf("maildir: export %s: %w", name, err)
	}
	return e, nil
}

func (e *Export) load(ctx context.Context, name string) error {
	tx, err := e.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	e.tx = tx
	e.acc.Name = name
	rows, err := tx.QueryContext(ctx, `SELECT b.id, b.name, b.special_use, b.uidvalidity, b.uidnext, b.highestmodseq,
		b.recent_uid, b.msgs, b.bytes FROM mailboxes b ORDER BY b.name`)
	err = sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
		var m mailstore.ImportMailbox
		var id, uv, next, recent, bytes int64
		if err := row.Scan(&id, &m.Name, &m.SpecialUse, &uv, &next, &m.HighestModSeq, &recent, &m.Messages, &bytes); err != nil {
			return err
		}
		m.UIDValidity, m.UIDNext, m.RecentUID = uint32(uv), imap.UID(next), imap.UID(recent)
		e.ids[m.Name] = id
		e.acc.Mailboxes = append(e.acc.Mailboxes, m)
		e.acc.Messages += m.Messages
		e.acc.Bytes += bytes
		return nil
	})
	if err != nil {
		return err
	}
	for i := range e.acc.Mailboxes {
		m := &e.acc.Mailboxes[i]
		rows, err := tx.QueryContext(ctx, `SELECT modseq, uid_lo, uid_hi FROM expunged WHERE mailbox = ? ORDER BY modseq, uid_lo`, e.ids[m.Name])
		m.Expunged, err = sqlitedb.Collect(rows, err, func(row sqlitedb.Scanner) (mailstore.ExpungedRange, error) {
			var r mailstore.ExpungedRange
			var lo, hi int64
			err := row.Scan(&r.ModSeq, &lo, &hi)
			r.Lo, r.Hi = imap.UID(lo), imap.UID(hi)
			return r, err
		})
		if err != nil {
			return err
		}
	}
	rows, err = tx.QueryContext(ctx, `SELECT name FROM subscriptions ORDER BY name`)
	if e.acc.Subscriptions, err = sqlitedb.Collect(rows, err, sqlitedb.Value[string]); err != nil {
		return err
	}
	e.mark, err = stateMark(ctx, tx)
	return err
}

// stateMark sums up what any change to the account's mailboxes,
// messages or subscriptions changes.
func stateMark(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (string, error) {
	var mark string
	err := q.QueryRowContext(ctx, `SELECT
		(SELECT ifnull(group_concat(id || ':' || name || ':' || uidvalidity || ':' || uidnext || ':' || highestmodseq, ','), '')
			FROM (SELECT * FROM mailboxes ORDER BY id)) || '|' ||
		(SELECT ifnull(group_concat(name, ','), '') FROM (SELECT name FROM subscriptions ORDER BY name))`).Scan(&mark)
	return mark, err
}

// Account implements mailstore.ImportSource.
func (e *Export) Account() mailstore.ImportAccount { return e.acc }

// Messages implements mailstore.ImportSource.
func (e *Export) Messages(ctx context.Context, mailbox string, fn func(*mailstore.ImportMessage) error) error {
	id, ok := e.ids[mailbox]
	if !ok {
		return fmt.Errorf("maildir: export: %w: %s", mailstore.ErrNoSuchMailbox, mailbox)
	}
	mdir := filepath.Join(e.dir, maildirDir, fmt.Sprint(id))
	rows, err := e.tx.QueryContext(ctx, `SELECT uid, modseq, flags, keywords, size, internaldate, internalzone, emailid, file
		FROM messages WHERE mailbox = ? ORDER BY uid`, id)
	return sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
		var (
			uid, mask, idate, zone, eid int64
			kw                          sql.NullString
			file                        string
			m                           mailstore.ImportMessage
		)
		if err := row.Scan(&uid, &m.ModSeq, &mask, &kw, &m.Size, &idate, &zone, &eid, &file); err != nil {
			return err
		}
		m.UID = imap.UID(uid)
		m.Flags = flagList(mask, kw.String)
		m.InternalDate = internalDate(idate, zone)
		m.EmailID = emailID(eid)
		f, err := os.Open(filepath.Join(mdir, filepath.FromSlash(file)))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("maildir: export %s: UID %d of %s: its file is gone (is posthouse serve running on this data_dir?): %w",
					e.acc.Name, uid, mailbox, err)
			}
			return fmt.Errorf("maildir: export %s: %w", e.acc.Name, err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Size() != m.Size {
			return fmt.Errorf("maildir: export %s: UID %d of %s: file has %d bytes, index says %d (run posthouse admin check)",
				e.acc.Name, uid, mailbox, fi.Size(), m.Size)
		}
		m.Body = io.LimitReader(f, m.Size)
		return fn(&m)
	})
}

// Unchanged implements mailstore.ImportSource: it compares the index's
// current state with the one read, on a connection of its own.
func (e *Export) Unchanged(ctx context.Context) error {
	db, err := sqlitedb.OpenFile(filepath.Join(e.dir, indexFile), true)
	if err != nil {
		return fmt.Errorf("maildir: export %s: %w", e.acc.Name, err)
	}
	defer db.Close()
	now, err := stateMark(ctx, db)
	if err != nil {
		return fmt.Errorf("maildir: export %s: %w", e.acc.Name, err)
	}
	if now != e.mark {
		return fmt.Errorf("maildir: export %s: the account changed while it was read (is posthouse serve running on this data_dir?)", e.acc.Name)
	}
	return nil
}

// Close implements mailstore.ImportSource.
func (e *Export) Close() error {
	if e.tx != nil {
		e.tx.Rollback()
	}
	err := e.db.Close()
	e.h.Close()
	return err
}
