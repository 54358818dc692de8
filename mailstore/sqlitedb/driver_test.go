package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"runtime/metrics"
	"testing"
	"time"
)

func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// TestExecWithoutGoroutine: statements that change the database, given a
// cancellable context (as every protocol command's is), run on the
// caller's goroutine: 200 of them, plain, prepared and in a transaction,
// start almost no goroutines (go-sqlite3 alone starts one per statement).
// A context that has ended still refuses the statement.
func TestExecWithoutGoroutine(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "t.sqlite"), []Migration{func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE t (n INTEGER)`)
		return err
	}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if s := goroutinesCreated(); s == 0 {
		t.Skip("no goroutine count in runtime/metrics")
	}
	st, err := db.Write.PrepareContext(ctx, `INSERT INTO t (n) VALUES (?)`)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	before := goroutinesCreated()
	for i := 0; i < 100; i++ {
		if _, err := db.Write.ExecContext(ctx, `INSERT INTO t (n) VALUES (?)`, i); err != nil {
			t.Fatal(err)
		}
		if _, err := st.ExecContext(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := db.Write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := tx.ExecContext(ctx, `UPDATE t SET n = n + 1 WHERE n = ?`, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := goroutinesCreated() - before; n > 20 {
		t.Fatalf("300 statements started %d goroutines", n)
	}
	var count int
	if err := db.Read.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&count); err != nil || count != 200 {
		t.Fatalf("count %d, %v; want 200", count, err)
	}
	cancel()
	if _, err := db.Write.ExecContext(ctx, `INSERT INTO t (n) VALUES (1)`); !errors.Is(err, context.Canceled) {
		t.Fatalf("Exec under an ended context: %v, want context.Canceled", err)
	}
}

// openThree opens a new database whose table t holds 1, 2 and 3; the test
// closes it.
func openThree(t *testing.T, ctx context.Context) *DB {
	t.Helper()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "t.sqlite"), []Migration{func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1), (2), (3)`)
		return err
	}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestStatementCacheNested: statements run by text are kept prepared per
// connection (Open's _stmt_cache_size); the same text used again while its
// rows are still open on the one connection of a transaction gets its own
// statement, and both read the rows they should.
func TestStatementCacheNested(t *testing.T) {
	ctx := context.Background()
	db := openThree(t, ctx)
	const q = `SELECT n FROM t WHERE n >= ? ORDER BY n`
	for round := 0; round < 3; round++ { // the later rounds take the cached statement
		tx, err := db.Write.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		outer, err := tx.QueryContext(ctx, q, 1)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		sum := 0
		for outer.Next() {
			var n int
			if err := outer.Scan(&n); err != nil {
				t.Fatal(err)
			}
			got = append(got, n)
			if n != 1 {
				continue
			}
			// The same text again, on the transaction's one
			// connection, while the outer rows are open.
			inner, err := tx.QueryContext(ctx, q, 2)
			if err != nil {
				t.Fatal(err)
			}
			for inner.Next() {
				var m int
				inner.Scan(&m)
				sum += m
			}
			if err := inner.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if err := outer.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE t SET n = n WHERE n = ?`, 1); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0] != 1 || got[2] != 3 || sum != 5 {
			t.Fatalf("round %d: outer %v, inner sum %d; want [1 2 3] and 5", round, got, sum)
		}
	}
	// Two open cursors of one text on the read pool at once.
	r1, err := db.Read.QueryContext(ctx, q, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := db.Read.QueryContext(ctx, q, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	var a, b []int
	for r1.Next() && r2.Next() {
		var x, y int
		r1.Scan(&x)
		r2.Scan(&y)
		a, b = append(a, x), append(b, y)
	}
	if len(a) != 1 || a[0] != 1 || b[0] != 3 {
		t.Fatalf("interleaved cursors read %v and %v, want [1] and [3]", a, b)
	}
}

// TestQuietReads: queries on a connection given a Quiet context start no
// goroutine (database/sql starts one per Rows under a cancellable
// context), inside BEGIN and ROLLBACK too, and still end when the hidden
// context ends: SQLite is interrupted in the middle of a long query.
func TestQuietReads(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := openThree(t, ctx)
	if s := goroutinesCreated(); s == 0 {
		t.Skip("no goroutine count in runtime/metrics")
	}
	c, err := db.Read.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := Quiet(ctx)
	read := func(c *sql.Conn, ctx context.Context) {
		t.Helper()
		for i := 0; i < 50; i++ {
			var sum int
			if err := c.QueryRowContext(ctx, `SELECT sum(n) FROM t WHERE n >= ?`, 1).Scan(&sum); err != nil || sum != 6 {
				t.Fatalf("sum %d, %v; want 6", sum, err)
			}
		}
	}
	before := goroutinesCreated()
	read(c, ctx)
	if n := goroutinesCreated() - before; n < 50 {
		t.Fatalf("50 queries under a cancellable context started %d goroutines; the test cannot tell", n)
	}
	before = goroutinesCreated()
	if _, err := c.ExecContext(q, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	read(c, q)
	if _, err := c.ExecContext(q, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if n := goroutinesCreated() - before; n > 5 {
		t.Fatalf("50 quiet queries started %d goroutines", n)
	}

	// A query that would run for minutes, interrupted by the hidden
	// context's end.
	lctx, lcancel := context.WithCancel(ctx)
	// go-sqlite3 takes a query's first step in QueryContext: the context
	// ends while it runs.
	time.AfterFunc(50*time.Millisecond, lcancel)
	done := make(chan error, 1)
	go func() {
		var n int64
		done <- c.QueryRowContext(Quiet(lctx), `WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 10000000000) SELECT count(*) FROM r`).Scan(&n)
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a query under an ended context ran to its end")
		}
	case <-time.After(time.Minute):
		t.Fatal("the ended context did not interrupt the query")
	}
}

// TestQuietOn: a database of this package's driver gets a Quiet context;
// another driver's (here go-sqlite3's own) the caller's, whose
// cancellation it would otherwise never see.
func TestQuietOn(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := openThree(t, ctx)
	if q := QuietOn(db.Read, ctx); q.Done() != nil || loud(q) != ctx {
		t.Fatal("QuietOn of a sqlitedb database is not Quiet")
	}
	other, err := sql.Open("sqlite3", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if q := QuietOn(other, ctx); q != ctx {
		t.Fatal("QuietOn of another driver's database hid the context")
	}
}

// TestEndTx: a COMMIT that fails (a deferred foreign key) is rolled back,
// so the connection goes back to the pool outside any transaction and the
// transaction's rows are gone; a plain COMMIT and ROLLBACK end theirs.
func TestEndTx(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "t.sqlite"), []Migration{Exec(
		`CREATE TABLE p (id INTEGER PRIMARY KEY)`,
		`CREATE TABLE c (p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)`,
	)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	run := func(insert, end string) error {
		t.Helper()
		c, err := db.Write.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, insert); err != nil {
			t.Fatal(err)
		}
		err = EndTx(ctx, c, end)
		if inTx(c) {
			t.Fatalf("%s left the connection in a transaction", end)
		}
		return err
	}
	if err := run(`INSERT INTO c VALUES (7)`, `COMMIT`); err == nil {
		t.Fatal("COMMIT of a dangling foreign key succeeded")
	}
	if err := run(`INSERT INTO p VALUES (7)`, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := run(`INSERT INTO p VALUES (8)`, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	var rows string
	if err := db.Read.QueryRowContext(ctx, `SELECT (SELECT group_concat(id) FROM p) || '/' || (SELECT count(*) FROM c)`).Scan(&rows); err != nil || rows != "8/0" {
		t.Fatalf("rows %q, %v; want 8/0 (only the committed parent)", rows, err)
	}
}
