package sqlitedb

import (
	"context"
	"path/filepath"
	"testing"
)

func TestOpenMigratesOnceAndReadsBeside(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.sqlite")
	migs := []Migration{
		Exec(`CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`),
		Exec(`ALTER TABLE a ADD COLUMN w INTEGER NOT NULL DEFAULT 7`),
	}
	db, err := Open(ctx, path, migs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Write.ExecContext(ctx, `INSERT INTO a (v) VALUES ('x')`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Reopening must not re-run migrations (the ALTER would fail twice).
	db, err = Open(ctx, path, migs, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	var v string
	var w int
	if err := db.Read.QueryRowContext(ctx, `SELECT v, w FROM a`).Scan(&v, &w); err != nil {
		t.Fatal(err)
	}
	if v != "x" || w != 7 {
		t.Fatalf("got %q %d", v, w)
	}
	if _, err := db.Read.ExecContext(ctx, `INSERT INTO a (v) VALUES ('y')`); err == nil {
		t.Fatal("read pool accepted a write")
	}
	var mode string
	if err := db.Read.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q, %v", mode, err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.sqlite")
	db, err := Open(ctx, path, []Migration{Exec(`CREATE TABLE a (x)`), Exec(`CREATE TABLE b (x)`)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(ctx, path, []Migration{Exec(`CREATE TABLE a (x)`)}, Options{}); err == nil {
		t.Fatal("older binary opened a newer schema")
	}
}
