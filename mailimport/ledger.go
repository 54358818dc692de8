package mailimport

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// LedgerFile is the ledger's file name in the data directory.
const LedgerFile = "import.sqlite"

// Ledger records what was imported into which mailbox (see the package doc).
// It is safe for concurrent use, also by several processes.
type Ledger struct {
	db *sqlitedb.DB
}

var ledgerSchema = []sqlitedb.Migration{
	sqlitedb.Exec(
		`CREATE TABLE imported (
			account TEXT NOT NULL,
			mailbox INTEGER NOT NULL,
			uidvalidity INTEGER NOT NULL,
			hash BLOB NOT NULL,
			uid INTEGER NOT NULL,
			PRIMARY KEY (account, mailbox, uidvalidity, hash)
		) WITHOUT ROWID`,
		`CREATE TABLE pending (
			account TEXT NOT NULL,
			mailbox INTEGER NOT NULL,
			uidvalidity INTEGER NOT NULL,
			hash BLOB NOT NULL,
			uidnext INTEGER NOT NULL,
			size INTEGER NOT NULL,
			flags TEXT NOT NULL,
			date INTEGER NOT NULL,
			zone INTEGER NOT NULL,
			PRIMARY KEY (account, mailbox, uidvalidity, hash)
		) WITHOUT ROWID`,
		`CREATE TABLE remote_folders (
			account TEXT NOT NULL,
			source TEXT NOT NULL,
			folder TEXT NOT NULL,
			uidvalidity INTEGER NOT NULL,
			last_uid INTEGER NOT NULL,
			PRIMARY KEY (account, source, folder)
		) WITHOUT ROWID`,
	),
}

// OpenLedger opens (creating) the ledger at path.
func OpenLedger(ctx context.Context, path string) (*Ledger, error) {
	// NORMAL: a commit lost to a power cut is a message imported once
	// more, never a message lost.
	db, err := sqlitedb.Open(ctx, path, ledgerSchema, sqlitedb.Options{Synchronous: "NORMAL"})
	if err != nil {
		return nil, fmt.Errorf("mailimport: ledger: %w", err)
	}
	return &Ledger{db: db}, nil
}

// Close closes the database.
func (l *Ledger) Close() error { return l.db.Close() }

// entry identifies one message in one mailbox.
type entry struct {
	account     string
	mailbox     int64
	uidValidity uint32
	hash        []byte
}

func (l *Ledger) has(ctx context.Context, e entry) (bool, error) {
	var one int
	err := l.db.Read.QueryRowContext(ctx, `SELECT 1 FROM imported WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND hash = ?`,
		e.account, e.mailbox, e.uidValidity, e.hash).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mailimport: ledger: %w", err)
	}
	return true, nil
}

func (l *Ledger) begin(ctx context.Context, e entry, uidNext imap.UID, size int64, flags []imap.Flag, date time.Time) error {
	var fl []string
	for _, f := range flags {
		fl = append(fl, string(f))
	}
	_, zone := date.Zone()
	_, err := l.db.Write.ExecContext(ctx, `INSERT OR REPLACE INTO pending (account, mailbox, uidvalidity, hash, uidnext, size, flags, date, zone) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.account, e.mailbox, e.uidValidity, e.hash, int64(uidNext), size, strings.Join(fl, " "), date.Unix(), zone)
	if err != nil {
		return fmt.Errorf("mailimport: ledger: %w", err)
	}
	return nil
}

// finish records e as stored with uid (0: not stored) and drops its
// pending row. It runs without the caller's context: the append is done.
func (l *Ledger) finish(e entry, uid imap.UID) error {
	ctx := context.Background()
	tx, err := l.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("mailimport: ledger: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`DELETE FROM pending WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND hash = ?`,
		e.account, e.mailbox, e.uidValidity, e.hash); err != nil {
		return fmt.Errorf("mailimport: ledger: %w", err)
	}
	if uid != 0 {
		if _, err := tx.Exec(`INSERT OR REPLACE INTO imported (account, mailbox, uidvalidity, hash, uid) VALUES (?, ?, ?, ?, ?)`,
			e.account, e.mailbox, e.uidValidity, e.hash, int64(uid)); err != nil {
			return fmt.Errorf("mailimport: ledger: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("mailimport: ledger: %w", err)
	}
	return nil
}

// pendingRow is an append that may or may not have happened, with the
// flags and internal date it was to have.
type pendingRow struct {
	entry
	uidNext imap.UID
	size    int64
	flags   []imap.Flag
	date    time.Time
}

func (l *Ledger) pending(ctx context.Context, account string) ([]pendingRow, error) {
	rows, err := l.db.Read.QueryContext(ctx, `SELECT mailbox, uidvalidity, hash, uidnext, size, flags, date, zone FROM pending WHERE account = ?`, account)
	var out []pendingRow
	err = sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
		p := pendingRow{entry: entry{account: account}}
		var uidNext, date int64
		var zone int
		var flags string
		if err := row.Scan(&p.mailbox, &p.uidValidity, &p.hash, &uidNext, &p.size, &flags, &date, &zone); err != nil {
			return err
		}
		p.uidNext = imap.UID(uidNext)
		for _, f := range strings.Fields(flags) {
			p.flags = append(p.flags, imap.Flag(f))
		}
		p.date = time.Unix(date, 0).In(time.FixedZone("", zone))
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mailimport: ledger: %w", err)
	}
	return out, nil
}

// FolderState is what was copied from one remote folder.
type FolderState struct {
	UIDValidity uint32
	LastUID     imap.UID
}

// FolderState returns the state of a remote folder of source copied into
// account; zero if none was recorded.
func (l *Ledger) FolderState(ctx context.Context, account, source, folder string) (FolderState, error) {
	var st FolderState
	var last int64
	err := l.db.Read.QueryRowContext(ctx, `SELECT uidvalidity, last_uid FROM remote_folders WHERE account = ? AND source = ? AND folder = ?`,
		account, source, folder).Scan(&st.UIDValidity, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return FolderState{}, nil
	}
	if err != nil {
		return FolderState{}, fmt.Errorf("mailimport: ledger: %w", err)
	}
	st.LastUID = imap.UID(last)
	return st, nil
}

// SetFolderState records the state of a remote folder.
func (l *Ledger) SetFolderState(ctx context.Context, account, source, folder string, st FolderState) error {
	_, err := l.db.Write.ExecContext(ctx, `INSERT OR REPLACE INTO remote_folders (account, source, folder, uidvalidity, last_uid) VALUES (?, ?, ?, ?, ?)`,
		account, source, folder, st.UIDValidity, int64(st.LastUID))
	if err != nil {
		return fmt.Errorf("mailimport: ledger: %w", err)
	}
	return nil
}
