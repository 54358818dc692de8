package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"runtime/metrics"
	"testing"
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

// TestStatementCacheNested: statements run by text are kept prepared per
// connection (Open's _stmt_cache_size); the same text used again while its
// rows are still open on the one connection of a transaction gets its own
// statement, and both read the rows they should.
func TestStatementCacheNested(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "t.sqlite"), []Migration{func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1), (2), (3)`)
		return err
	}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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
