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
