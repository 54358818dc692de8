package sqlitedb

import (
	"context"
	"database/sql"
	"database/sql/driver"

	"github.com/mattn/go-sqlite3"
)

// driverName is go-sqlite3 with two changes: statements that change the
// database run without their context's cancellation, and queries given a
// Quiet context run with the context it hides.
//
// go-sqlite3 runs each Exec given a cancellable context on a goroutine of
// its own and waits for it, so that it can interrupt SQLite if the context
// ends. With Posthouse's contexts (every protocol command has a deadline)
// that was a hand-over between threads for every INSERT, UPDATE, DELETE,
// BEGIN and COMMIT: about a dozen per APPEND into a selected mailbox, a
// third of its 2 ms. These statements touch a local file and are short;
// database/sql still refuses to start one under an ended context, and
// queries (reads) keep their cancellation, which go-sqlite3 arms without a
// goroutine.
const driverName = "sqlite3-posthouse"

func init() {
	sql.Register(driverName, sqliteDriver{})
}

type sqliteDriver struct{}

func (sqliteDriver) Open(dsn string) (driver.Conn, error) {
	c, err := (&sqlite3.SQLiteDriver{}).Open(dsn)
	if err != nil {
		return nil, err
	}
	return &conn{c.(*sqlite3.SQLiteConn)}, nil
}

// conn is a go-sqlite3 connection whose ExecContext and prepared
// statements run without cancellation. Raw gives it as is: Unwrap reaches
// the *sqlite3.SQLiteConn.
type conn struct{ *sqlite3.SQLiteConn }

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.SQLiteConn.ExecContext(context.WithoutCancel(ctx), query, args)
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.SQLiteConn.QueryContext(loud(ctx), query, args)
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.SQLiteConn.BeginTx(context.WithoutCancel(ctx), opts)
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	s, err := c.SQLiteConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &stmt{s.(*sqlite3.SQLiteStmt)}, nil
}

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

type stmt struct{ *sqlite3.SQLiteStmt }

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.SQLiteStmt.ExecContext(context.WithoutCancel(ctx), args)
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.SQLiteStmt.QueryContext(loud(ctx), args)
}

// quietKey holds, in a context made by Quiet, the context it hides.
type quietKey struct{}

// Quiet returns ctx as database/sql should see it for a short read on a
// connection (sql.Conn) or a prepared statement: without cancellation, so
// that database/sql starts no goroutine to watch it, while go-sqlite3,
// given ctx back by this driver, still interrupts SQLite when ctx ends
// (context.AfterFunc, no goroutine either).
//
// database/sql watches a cancellable context with a goroutine for every
// Rows, and for every transaction (sql.Tx) whatever its context. An IMAP
// SELECT made three read transactions, each a goroutine for the
// transaction and one per query, and each goroutine a hand-over between
// threads: under imaptest's stress 3.8 goroutines per command. Reads
// through Quiet on a sql.Conn, with BEGIN and ROLLBACK as statements,
// start none. Errors of an ended ctx come from the driver (at the next
// row) rather than from database/sql (before the query).
func Quiet(ctx context.Context) context.Context {
	if ctx.Done() == nil {
		return ctx
	}
	return context.WithValue(context.WithoutCancel(ctx), quietKey{}, ctx)
}

// QuietOn is Quiet(ctx) for a database opened by this package and ctx
// itself for any other: another driver (PostgreSQL's) never sees the
// context Quiet hides, so it would lose the cancellation.
func QuietOn(db *sql.DB, ctx context.Context) context.Context {
	if _, ok := db.Driver().(sqliteDriver); !ok {
		return ctx
	}
	return Quiet(ctx)
}

// loud undoes Quiet.
func loud(ctx context.Context) context.Context {
	if p, ok := ctx.Value(quietKey{}).(context.Context); ok {
		return p
	}
	return ctx
}

// EndTx ends the transaction begun by statement on c with stmt, COMMIT or
// ROLLBACK. A failed COMMIT is rolled back; a connection still inside a
// transaction after that must not go back to the pool, so database/sql is
// told to drop it.
func EndTx(ctx context.Context, c *sql.Conn, stmt string) error {
	_, err := c.ExecContext(ctx, stmt)
	if err == nil {
		return nil
	}
	if stmt != "ROLLBACK" && inTx(c) {
		c.ExecContext(ctx, "ROLLBACK")
	}
	if inTx(c) {
		c.Raw(func(any) error { return driver.ErrBadConn })
	}
	return err
}

// inTx says whether c's SQLite connection is inside a transaction (true
// when that cannot be told).
func inTx(c *sql.Conn) bool {
	in := true
	c.Raw(func(dc any) error {
		if sc, ok := rawSQLite(dc); ok {
			in = !sc.AutoCommit()
		}
		return nil
	})
	return in
}

// rawSQLite is the go-sqlite3 connection behind a driver connection given
// by sql.Conn.Raw.
func rawSQLite(dc any) (*sqlite3.SQLiteConn, bool) {
	switch c := dc.(type) {
	case *conn:
		return c.SQLiteConn, true
	case *sqlite3.SQLiteConn:
		return c, true
	}
	return nil, false
}
