// Package sqlitedb opens Posthouse's SQLite databases the one way we want
// them: WAL journal, a busy timeout, foreign keys on, immediate write
// transactions, and numbered migrations run at open (all pending steps in
// one transaction, after a copy of the database is kept beside it); one way
// to read a query's rows (Each, Collect); statements that database/sql
// does not watch with goroutines (Quiet, QuietOn) in transactions on a
// held connection (EndTx); and consistent copies of a live database with
// SQLite's online backup API (Copy), which backups use too. It also keeps
// glibc's malloc from handing SQLite's emptied page caches back to the
// kernel (freedHeapKept). auth, junk,
// sievestore, queue, dkim and mailstore/maildir use it; it imports nothing
// of ours.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
)

// BusyTimeoutMillis is how long a connection waits for a lock held by another
// connection or process (posthouse admin while serve runs) before SQLITE_BUSY.
const BusyTimeoutMillis = 10000

// DB is a pair of pools on one database file: Write has a single connection,
// so writers queue in Go rather than spinning on SQLITE_BUSY, and its
// transactions start with BEGIN IMMEDIATE; Read is a pool for readers, which
// WAL lets run beside the writer.
type DB struct {
	Write *sql.DB
	Read  *sql.DB
}

// Migration is one numbered step of a schema. The schema's version is kept
// in PRAGMA user_version; Open runs the steps a database lacks in order, all
// in one transaction, after copying the database aside (see Open).
type Migration func(ctx context.Context, tx *sql.Tx) error

// Options tune Open.
type Options struct {
	// Synchronous is SQLite's synchronous setting: "FULL" (default) makes a
	// commit durable on return; "NORMAL" may lose the last commits on power
	// loss (never corrupts).
	Synchronous string
	// MaxReaders caps the read pool (default 4).
	MaxReaders int
	// IncrementalVacuum makes a new database with auto_vacuum=INCREMENTAL,
	// so PRAGMA incremental_vacuum can give its free pages back (an
	// existing one keeps its setting: changing it takes a VACUUM).
	IncrementalVacuum bool
}

// FileMode is the mode of every database file: SQLite would create one
// 0644 (less the umask), and its -wal and -shm files copy the main file's
// mode. Our databases hold password hashes, DKIM keys and mail metadata.
const FileMode = 0o600

// Open opens (creating if needed, mode FileMode) the database at path and
// runs migrations. An existing database, -wal or -shm file readable by
// others is set to FileMode.
//
// Before upgrading an existing database's schema, Open copies it with
// SQLite's online backup API to UpgradeCopyPath(path, new version), and
// refuses to migrate without that copy. The pending steps run in one
// transaction: when one fails, nothing is changed, and the error is a
// *MigrationError that names the file, the copy and what to do. After a
// successful upgrade the copies from earlier upgrades are removed, so one
// copy per database is kept: the one from before the latest upgrade.
func Open(ctx context.Context, path string, migrations []Migration, opts Options) (*DB, error) {
	if err := privateFiles(path); err != nil {
		return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	if opts.Synchronous == "" {
		opts.Synchronous = "FULL"
	}
	if opts.MaxReaders <= 0 {
		opts.MaxReaders = 4
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", fmt.Sprint(BusyTimeoutMillis))
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", opts.Synchronous)
	q.Set("_txlock", "immediate")
	// go-sqlite3 keeps the statements run by text (not prepared by the
	// caller) prepared per connection, up to this many: the queue, junk,
	// Sieve and greylist code parsed every statement each time (SQLite's
	// parser was about 3 % of the server's CPU relaying mail). A
	// statement in use is taken out of the cache, so a nested use of the
	// same text gets a statement of its own.
	q.Set("_stmt_cache_size", "32")
	if opts.IncrementalVacuum {
		// Before the WAL mode writes the first page (the driver sets it
		// first); the readers leave it alone.
		q.Set("_auto_vacuum", "incremental")
	}
	w, err := sql.Open(driverName, "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := migrate(ctx, w, path, migrations); err != nil {
		w.Close()
		var me *MigrationError
		if errors.As(err, &me) {
			return nil, err // says which file, and what to do
		}
		return nil, fmt.Errorf("sqlitedb: migrate %s: %w", path, err)
	}
	q.Del("_auto_vacuum")
	q.Set("_txlock", "deferred")
	q.Set("_query_only", "true")
	r, err := sql.Open(driverName, "file:"+path+"?"+q.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlitedb: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(opts.MaxReaders)
	r.SetMaxIdleConns(opts.MaxReaders)
	return &DB{Write: w, Read: r}, nil
}

// privateFiles creates the database file with FileMode before SQLite does,
// and tightens the modes of an existing one and its companions.
func privateFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() == FileMode {
			continue
		}
		if err := os.Chmod(p, FileMode); err != nil {
			return err
		}
	}
	return nil
}

// Close closes both pools.
func (db *DB) Close() error {
	err1 := db.Read.Close()
	err2 := db.Write.Close()
	if err1 != nil {
		return err1
	}
	return err2
}

func migrate(ctx context.Context, db *sql.DB, path string, migrations []Migration) error {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this binary knows (%d)", version, len(migrations))
	}
	if version == len(migrations) {
		return nil
	}
	target := len(migrations)
	var saved string
	if version > 0 {
		// An upgrade, not a new database: keep the old one first.
		saved = UpgradeCopyPath(path, target)
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		err = copyConn(ctx, conn, saved)
		conn.Close()
		if err != nil {
			return fmt.Errorf("%s: no upgrade to schema v%d without a copy of the database first: %w", path, target, err)
		}
	}
	// Every pending step in one transaction: a failure anywhere leaves the
	// database as it was, never between two versions.
	fail := func(step int, err error) error {
		return &MigrationError{Path: path, From: version, To: target, Step: step, Copy: saved, Err: err}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fail(version+1, err)
	}
	for i := version; i < target; i++ {
		if err := migrations[i](ctx, tx); err != nil {
			tx.Rollback()
			return fail(i+1, err)
		}
	}
	// PRAGMA takes no bound parameters; target is our own integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", target)); err != nil {
		tx.Rollback()
		return fail(target, err)
	}
	if err := tx.Commit(); err != nil {
		return fail(target, err)
	}
	if saved != "" {
		pruneUpgradeCopies(path, target)
	}
	return nil
}

// Exec returns a Migration that runs SQL statements.
func Exec(stmts ...string) Migration {
	return func(ctx context.Context, tx *sql.Tx) error {
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
}
