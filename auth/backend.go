package auth

import (
	"database/sql"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/mattn/go-sqlite3"
	"github.com/posthouse/posthouse/internal/pgdb"
)

// sysDB is where the system tables live: users.sqlite (Open) or the
// PostgreSQL database shared by several nodes (OpenPostgres). Both hold the
// same tables and run the same SQL, written with ? placeholders (the
// PostgreSQL connections rewrite them to $n), so nothing else in the
// package knows which one it talks to; doc.go "PostgreSQL" says what
// differs.
type sysDB struct {
	// Write takes the writes; Read the reads. For SQLite, Write has one
	// connection and its transactions start with BEGIN IMMEDIATE; for
	// PostgreSQL both are the same pool.
	Write, Read *sql.DB
	// writeLock, if set, is run first in every write transaction (DB.write):
	// PostgreSQL takes a transaction-level advisory lock there, so that
	// writers of the system tables run one at a time across all nodes, as
	// SQLite's single writer makes them on one machine. The read-then-write
	// checks of AddUser, AddAlias or CreateAppPassword rely on that.
	writeLock string
	// shared: other nodes use the same tables at the same time, so the
	// throttling counters live in the database too (pgthrottle.go).
	shared bool
	close  func() error
}

// authWriteLock is the advisory lock key of system table writers ("PHAUTHWR").
const authWriteLock = 0x5048415554485752

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation, from
// either database.
func isUnique(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrConstraint &&
			(se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey)
	}
	return pgdb.IsUnique(err)
}

// pgSQLDB opens database/sql on pool (the process's shared pgx pool) with
// connections that rewrite ? placeholders (package pgdb). It holds at most
// maxConns of the pool's connections.
func pgSQLDB(pool *pgxpool.Pool, maxConns int) *sql.DB {
	return pgdb.SQLDB(pool, maxConns, nil)
}
