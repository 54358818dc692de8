package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestNewDatabase checks that a test gets its own working database.
func TestNewDatabase(t *testing.T) {
	a, b := NewDatabase(t), NewDatabase(t)
	if a == b {
		t.Fatalf("two databases share the DSN %q", a)
	}
	for _, dsn := range []string{a, b} {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatalf("connect %q: %v", dsn, err)
		}
		if _, err := c.Exec(context.Background(), "CREATE TABLE t (x int)"); err != nil {
			t.Fatalf("create table in %q: %v", dsn, err)
		}
		var n int
		if err := c.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE tablename = 't'").Scan(&n); err != nil || n != 1 {
			t.Fatalf("tables named t in %q: %d, %v; want 1", dsn, n, err)
		}
		c.Close(context.Background())
	}
}
