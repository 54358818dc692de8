package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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

// TestLoopback starts a durable server on 127.0.0.1: its DSN reaches it
// over TCP, and DataDir and PID name its data directory and postmaster.
func TestLoopback(t *testing.T) {
	Shared(t) // skips when PostgreSQL is not installed
	s, err := StartWith(StartOptions{Durable: true, Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var addr, fsync string
	if err := c.QueryRow(ctx, "SELECT host(inet_server_addr()), current_setting('fsync')").Scan(&addr, &fsync); err != nil {
		t.Fatal(err)
	}
	if addr != "127.0.0.1" || fsync != "on" {
		t.Errorf("server address %q, fsync %q; want 127.0.0.1 and on", addr, fsync)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir(), "pg_wal")); err != nil {
		t.Errorf("DataDir: %v", err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", s.PID())); s.PID() <= 0 || err != nil {
		t.Errorf("PID %d: %v", s.PID(), err)
	}
}
