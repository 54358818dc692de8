package pgdb

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
)

// SQLDB opens database/sql on pool (the process's shared pool; closing the
// *sql.DB does not close it) with connections that accept SQLite's ?
// placeholders, so that a package keeps one set of SQL for its SQLite file
// and for PostgreSQL. rename, if not nil, maps table names of that SQL to
// the names they have in PostgreSQL, where every component shares one
// namespace (sievestore's scripts are sieve_scripts). It holds at most
// maxConns of the pool's connections.
func SQLDB(pool *pgxpool.Pool, maxConns int, rename map[string]string) *sql.DB {
	db := sql.OpenDB(rebindConnector{stdlib.GetPoolConnector(pool), rename})
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(min(2, maxConns))
	return db
}

// IsUnique reports whether err is PostgreSQL's unique_violation (a UNIQUE
// or PRIMARY KEY constraint).
func IsUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

type rebindConnector struct {
	driver.Connector
	rename map[string]string
}

func (c rebindConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		conn.Close()
		return nil, errors.New("pgdb: unexpected pgx connection type")
	}
	return rebindConn{sc, c.rename}, nil
}

// rebindConn is a pgx connection that accepts ? placeholders.
type rebindConn struct {
	*stdlib.Conn
	rename map[string]string
}

func (c rebindConn) Prepare(q string) (driver.Stmt, error) {
	return c.Conn.Prepare(Rebind(q, c.rename))
}

func (c rebindConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, Rebind(q, c.rename))
}

func (c rebindConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, Rebind(q, c.rename), args)
}

func (c rebindConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, Rebind(q, c.rename), args)
}

// Rebind turns each ? outside a quoted string or identifier into $1, $2, …
// in order, and each unquoted word that is a key of rename into its value.
// SQL given to SQLDB must have no other use of ?, and no column or alias
// named like a renamed table.
func Rebind(q string, rename map[string]string) string {
	if !strings.Contains(q, "?") && rename == nil {
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
		case isWordStart(c):
			j := i + 1
			for j < len(q) && (isWordStart(q[j]) || q[j] >= '0' && q[j] <= '9' || q[j] == '$') {
				j++
			}
			w := q[i:j]
			if r, ok := rename[w]; ok {
				w = r
			}
			b.WriteString(w)
			i = j - 1
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isWordStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}
