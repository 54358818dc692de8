package auth

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/mattn/go-sqlite3"
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
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// pgSQLDB opens database/sql on pool (the process's shared pgx pool) with
// connections that rewrite ? placeholders. It holds at most maxConns of the
// pool's connections.
func pgSQLDB(pool *pgxpool.Pool, maxConns int) *sql.DB {
	db := sql.OpenDB(rebindConnector{stdlib.GetPoolConnector(pool)})
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(min(2, maxConns))
	return db
}

type rebindConnector struct{ driver.Connector }

func (c rebindConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		conn.Close()
		return nil, errors.New("auth: unexpected pgx connection type")
	}
	return rebindConn{sc}, nil
}

// rebindConn is a pgx connection that accepts SQLite's ? placeholders.
type rebindConn struct{ *stdlib.Conn }

func (c rebindConn) Prepare(q string) (driver.Stmt, error) { return c.Conn.Prepare(rebind(q)) }

func (c rebindConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(q))
}

func (c rebindConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, rebind(q), args)
}

func (c rebindConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, rebind(q), args)
}

// rebind turns each ? outside a quoted string or identifier into $1, $2, …
// in order. The package's SQL has no other use of ?.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
