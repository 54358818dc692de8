package pgdb

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/posthouse/posthouse/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestMigrate: steps apply once each, in order, also when several nodes
// start at once; a later program's steps apply on top; a schema newer than
// the program is refused.
func TestMigrate(t *testing.T) {
	ctx := context.Background()
	pool, err := Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if pool.Config().MaxConns != DefaultMaxConns {
		t.Errorf("pool size %d, want the default %d", pool.Config().MaxConns, DefaultMaxConns)
	}
	steps := [][]string{
		{`CREATE TABLE t (x integer)`},
		{`INSERT INTO t VALUES (1)`, `INSERT INTO t VALUES (2)`},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- Migrate(ctx, pool, "test", steps)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate: %v", err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows after migrating: %d, %v; want 2 (each step once)", n, err)
	}
	// The next version of the program adds a step.
	steps = append(steps, []string{`INSERT INTO t VALUES (3)`})
	if err := Migrate(ctx, pool, "test", steps); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows after the third step: %d, %v; want 3", n, err)
	}
	// Another component has its own versions.
	if err := Migrate(ctx, pool, "other", [][]string{{`CREATE TABLE u (y integer)`}}); err != nil {
		t.Fatal(err)
	}
	// An older program refuses a newer schema.
	err = Migrate(ctx, pool, "test", steps[:1])
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Migrate of an older program: %v, want a refusal", err)
	}
	// A failing step leaves nothing of itself behind.
	bad := append(steps, []string{`INSERT INTO t VALUES (4)`, `SELECT no_such_function()`})
	if err := Migrate(ctx, pool, "test", bad); err == nil {
		t.Fatal("a failing step migrated")
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows after a failed step: %d, %v; want 3", n, err)
	}
}

// TestRebind: ? outside quotes becomes $n in order; renamed tables are
// whole unquoted words only.
func TestRebind(t *testing.T) {
	rename := map[string]string{"scripts": "sieve_scripts"}
	for _, c := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE b = ? AND c = '?' AND d = ?`, `SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2`},
		{`DELETE FROM scripts WHERE x IN (SELECT x FROM scripts_old) AND y = "scripts" AND z = ?`,
			`DELETE FROM sieve_scripts WHERE x IN (SELECT x FROM scripts_old) AND y = "scripts" AND z = $1`},
		{`UPDATE scripts SET n=excluded.n`, `UPDATE sieve_scripts SET n=excluded.n`},
		{`SELECT a FROM t WHERE x = ? AND y IN (?, ?)`, `SELECT a FROM t WHERE x = $1 AND y IN ($2, $3)`},
		{`SELECT "a?" FROM t WHERE b = ?`, `SELECT "a?" FROM t WHERE b = $1`},
		{`SELECT 'it''s' WHERE c = ?`, `SELECT 'it''s' WHERE c = $1`},
	} {
		if got := Rebind(c.in, rename); got != c.want {
			t.Errorf("Rebind(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
