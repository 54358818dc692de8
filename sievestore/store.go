package sievestore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
	"github.com/posthouse/posthouse/sieve"
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("sievestore: no such script")
	ErrExists   = errors.New("sievestore: a script with that name exists")
	ErrActive   = errors.New("sievestore: the script is active")
	// ErrQuota: too many scripts, or a script too large. ErrTooManyScripts
	// and ErrTooLarge wrap it and say which (ManageSieve's QUOTA/MAXSCRIPTS
	// and QUOTA/MAXSIZE, RFC 5804 §1.3).
	ErrQuota          = errors.New("sievestore: over quota")
	ErrTooManyScripts = fmt.Errorf("%w: too many scripts", ErrQuota)
	ErrTooLarge       = fmt.Errorf("%w: script too large", ErrQuota)
	// ErrBadName: a script name RFC 5804 §1.6 forbids, or one longer than
	// MaxNameBytes or with "/".
	ErrBadName = errors.New("sievestore: bad script name")
)

// Defaults of Options.
const (
	DefaultMaxScripts     = 20
	DefaultMaxScriptBytes = 64 << 10
	// DefaultMaxTracked bounds the duplicate and response rows kept per
	// account (each table).
	DefaultMaxTracked = 10_000
	// MaxNameBytes bounds a script name.
	MaxNameBytes = 128
	// cacheEntries bounds the compiled scripts kept in memory.
	cacheEntries = 1024
)

// Options configure Open. A zero field takes its default.
type Options struct {
	MaxScripts     int // scripts per account (DefaultMaxScripts)
	MaxScriptBytes int // bytes per script (DefaultMaxScriptBytes)
	// Compile are the options scripts are compiled and run with.
	Compile sieve.Options
	Logger  *slog.Logger

	// MaxTracked bounds duplicate and response rows per account
	// (DefaultMaxTracked).
	MaxTracked int
	// Now is the clock (tests move it); nil: time.Now.
	Now func() time.Time
}

// Script describes a stored script.
type Script struct {
	Name   string
	Active bool
	Size   int
}

// Store is the script store: see the package doc. It is safe for
// concurrent use, and beside other processes using the same file.
type Store struct {
	db    *sqlDB
	opts  Options
	log   *slog.Logger
	cache *cache

	// Prepared on the read pool, for every delivery: the active script's
	// name and hash, the out-of-office, whether a response was sent.
	activeStmt, vacationStmt, respondedStmt *sql.Stmt
}

var migrations = []sqlitedb.Migration{
	sqlitedb.Exec(
		`CREATE TABLE scripts (
			account TEXT NOT NULL,
			name TEXT NOT NULL,
			source BLOB NOT NULL,
			hash BLOB NOT NULL,
			active INTEGER NOT NULL DEFAULT 0,
			modified INTEGER NOT NULL,
			PRIMARY KEY (account, name)
		) WITHOUT ROWID`,
		`CREATE UNIQUE INDEX scripts_active ON scripts (account) WHERE active = 1`,
		`CREATE TABLE vacations (
			account TEXT PRIMARY KEY,
			subject TEXT NOT NULL,
			message TEXT NOT NULL,
			start INTEGER NOT NULL,
			until INTEGER NOT NULL,
			period INTEGER NOT NULL,
			modified INTEGER NOT NULL
		) WITHOUT ROWID`,
		`CREATE TABLE duplicates (
			account TEXT NOT NULL,
			id TEXT NOT NULL,
			expires INTEGER NOT NULL,
			UNIQUE (account, id)
		)`,
		`CREATE INDEX duplicates_expires ON duplicates (account, expires)`,
		`CREATE TABLE responses (
			account TEXT NOT NULL,
			handle TEXT NOT NULL,
			sender TEXT NOT NULL,
			expires INTEGER NOT NULL,
			UNIQUE (account, handle, sender)
		)`,
		`CREATE INDEX responses_expires ON responses (account, expires)`,
	),
}

// Open opens (creating) the script store at path, data_dir/sieve.sqlite.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	opts = withDefaults(opts)
	db, err := sqlitedb.Open(ctx, path, migrations, sqlitedb.Options{})
	if err != nil {
		return nil, fmt.Errorf("sievestore: %w", err)
	}
	return open(ctx, &sqlDB{Write: db.Write, Read: db.Read, close: db.Close}, opts)
}

// withDefaults fills opts' zero fields.
func withDefaults(opts Options) Options {
	if opts.MaxScripts <= 0 {
		opts.MaxScripts = DefaultMaxScripts
	}
	if opts.MaxScriptBytes <= 0 {
		opts.MaxScriptBytes = DefaultMaxScriptBytes
	}
	if opts.MaxTracked <= 0 {
		opts.MaxTracked = DefaultMaxTracked
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return opts
}

// open makes the Store over db, whichever database it is.
func open(ctx context.Context, db *sqlDB, opts Options) (*Store, error) {
	var err error
	s := &Store{db: db, opts: opts, log: opts.Logger, cache: newCache(cacheEntries)}
	for _, p := range []struct {
		stmt **sql.Stmt
		q    string
	}{
		{&s.activeStmt, `SELECT name, hash FROM scripts WHERE account = ? AND active = 1`},
		{&s.vacationStmt, `SELECT subject, message, start, until, period, modified FROM vacations WHERE account = ?`},
		{&s.respondedStmt, `SELECT count(*) FROM responses WHERE account = ? AND handle = ? AND sender = ? AND expires > ?`},
	} {
		if *p.stmt, err = db.Read.PrepareContext(ctx, p.q); err != nil {
			s.Close()
			return nil, fmt.Errorf("sievestore: %w", err)
		}
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	for _, st := range []*sql.Stmt{s.activeStmt, s.vacationStmt, s.respondedStmt} {
		if st != nil {
			st.Close()
		}
	}
	return s.db.close()
}

// MaxScripts and MaxScriptBytes are the quotas in force (for ManageSieve's
// capabilities).
func (s *Store) MaxScripts() int     { return s.opts.MaxScripts }
func (s *Store) MaxScriptBytes() int { return s.opts.MaxScriptBytes }

// ValidName checks a script name: UTF-8, 1 to MaxNameBytes octets, no
// control characters (RFC 5804 §1.6: U+0000-001F, U+007F-009F, U+2028,
// U+2029) and no "/". The error wraps ErrBadName.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameBytes || !utf8.ValidString(name) || strings.ContainsRune(name, '/') {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	for _, r := range name {
		if r < 0x20 || r >= 0x7f && r <= 0x9f || r == 0x2028 || r == 0x2029 {
			return fmt.Errorf("%w: %q", ErrBadName, name)
		}
	}
	return nil
}

// List returns an account's scripts, sorted by name (octet order).
func (s *Store) List(ctx context.Context, account string) ([]Script, error) {
	rows, err := s.db.Read.QueryContext(ctx, `SELECT name, active, length(source) FROM scripts WHERE account = ? ORDER BY name`, account)
	list, err := sqlitedb.Collect(rows, err, func(row sqlitedb.Scanner) (Script, error) {
		var sc Script
		err := row.Scan(&sc.Name, &sc.Active, &sc.Size)
		return sc, err
	})
	if err != nil {
		return nil, fmt.Errorf("sievestore: list %s: %w", account, err)
	}
	return list, nil
}

// Get returns a script's source; ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, account, name string) ([]byte, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	var src []byte
	err := s.db.Read.QueryRowContext(ctx, `SELECT source FROM scripts WHERE account = ? AND name = ?`, account, name).Scan(&src)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("sievestore: get %s: %w", account, err)
	}
	return src, nil
}

// Check compiles src with the store's options; the error is a
// *sieve.Error (line and column) or ErrTooLarge.
func (s *Store) Check(src []byte) error {
	if len(src) > s.opts.MaxScriptBytes {
		return fmt.Errorf("%w (%d bytes, at most %d)", ErrTooLarge, len(src), s.opts.MaxScriptBytes)
	}
	_, err := s.compiled(src, sha256.Sum256(src))
	return err
}

// HaveSpace says whether name, of size bytes, could be stored (RFC 5804
// §2.3): ErrQuota (ErrTooLarge or ErrTooManyScripts) when not. Replacing
// an existing script does not count as one more.
func (s *Store) HaveSpace(ctx context.Context, account, name string, size int) error {
	if err := ValidName(name); err != nil {
		return err
	}
	return s.haveSpace(ctx, s.db.Read, account, name, size)
}

// querier is a pool or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) haveSpace(ctx context.Context, q querier, account, name string, size int) error {
	if size > s.opts.MaxScriptBytes {
		return fmt.Errorf("%w (%d bytes, at most %d)", ErrTooLarge, size, s.opts.MaxScriptBytes)
	}
	var others int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM scripts WHERE account = ? AND name != ?`, account, name).Scan(&others)
	if err != nil {
		return fmt.Errorf("sievestore: %w", err)
	}
	if others+1 > s.opts.MaxScripts {
		return fmt.Errorf("%w (at most %d)", ErrTooManyScripts, s.opts.MaxScripts)
	}
	return nil
}

// Put stores a script (replacing one of the same name, which stays
// active if it was): its name is checked, then it is compiled (a
// *sieve.Error), then the quota, all before anything is written.
func (s *Store) Put(ctx context.Context, account, name string, src []byte) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if err := s.Check(src); err != nil {
		return err
	}
	hash := sha256.Sum256(src)
	return s.tx(ctx, account, func(tx *sql.Tx) error {
		if err := s.haveSpace(ctx, tx, account, name, len(src)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO scripts (account, name, source, hash, modified) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (account, name) DO UPDATE SET source = excluded.source, hash = excluded.hash, modified = excluded.modified`,
			account, name, src, hash[:], s.opts.Now().Unix())
		return err
	})
}

// SetActive makes name the account's active script, and the others
// inactive; "" leaves none active. ErrNotFound when name is not stored.
func (s *Store) SetActive(ctx context.Context, account, name string) error {
	if name != "" {
		if err := ValidName(name); err != nil {
			return err
		}
	}
	return s.tx(ctx, account, func(tx *sql.Tx) error {
		if name != "" {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM scripts WHERE account = ? AND name = ?`, account, name).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("%w: %s", ErrNotFound, name)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE scripts SET active = 0 WHERE account = ? AND active = 1`, account); err != nil {
			return err
		}
		if name == "" {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE scripts SET active = 1 WHERE account = ? AND name = ?`, account, name)
		return err
	})
}

// Delete removes a script: ErrActive when it is the active one (RFC 5804
// §2.10), ErrNotFound when there is none.
func (s *Store) Delete(ctx context.Context, account, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	return s.tx(ctx, account, func(tx *sql.Tx) error {
		var active bool
		err := tx.QueryRowContext(ctx, `SELECT active FROM scripts WHERE account = ? AND name = ?`, account, name).Scan(&active)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		if err != nil {
			return err
		}
		if active {
			return fmt.Errorf("%w: %s", ErrActive, name)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM scripts WHERE account = ? AND name = ?`, account, name)
		return err
	})
}

// Rename renames a script, active or not: ErrNotFound when oldName is not
// stored, ErrExists when newName is (RFC 5804 §2.11.1).
func (s *Store) Rename(ctx context.Context, account, oldName, newName string) error {
	if err := ValidName(oldName); err != nil {
		return err
	}
	if err := ValidName(newName); err != nil {
		return err
	}
	return s.tx(ctx, account, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM scripts WHERE account = ? AND name = ?`, account, oldName).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: %s", ErrNotFound, oldName)
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM scripts WHERE account = ? AND name = ?`, account, newName).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: %s", ErrExists, newName)
		}
		_, err := tx.ExecContext(ctx, `UPDATE scripts SET name = ?, modified = ? WHERE account = ? AND name = ?`,
			newName, s.opts.Now().Unix(), account, oldName)
		return err
	})
}

// DeleteAccount removes everything kept for an account: its scripts, its
// out-of-office setting, its duplicate and response tracking (admin user
// remove).
func (s *Store) DeleteAccount(ctx context.Context, account string) error {
	return s.tx(ctx, account, func(tx *sql.Tx) error {
		for _, table := range []string{"scripts", "vacations", "duplicates", "responses"} {
			// table is one of our own names.
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE account = ?`, account); err != nil {
				return err
			}
		}
		return nil
	})
}

// tx runs fn in a write transaction. Errors of ours (sentinels) pass
// through; the database's are wrapped.
func (s *Store) tx(ctx context.Context, account string, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sievestore: %w", err)
	}
	if err := s.db.lockAccount(ctx, tx, account); err != nil {
		tx.Rollback()
		return fmt.Errorf("sievestore: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		if isOurs(err) {
			return err
		}
		return fmt.Errorf("sievestore: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sievestore: %w", err)
	}
	return nil
}

func isOurs(err error) bool {
	for _, e := range []error{ErrNotFound, ErrExists, ErrActive, ErrQuota, ErrBadName} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
