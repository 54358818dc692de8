package backend

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/mailstore"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestOpenPostgres opens the postgres backend on the DSN, with the quota
// func.
func TestOpenPostgres(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Backend: Postgres, DSN: pgtest.NewDatabase(t), Quota: func(context.Context, string) (int64, error) { return 10, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Reconcile(ctx); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	acct, err := s.Open(ctx, "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	_, err = acct.Deliver(ctx, strings.NewReader("Subject: x\r\n\r\nmore than ten bytes\r\n"), mailstore.DeliverOptions{})
	if !errors.Is(err, mailstore.ErrOverQuota) {
		t.Errorf("Deliver over the quota: %v, want ErrOverQuota", err)
	}
	// A DSN that names no server fails Open, with a nil Store.
	bad, err := Open(ctx, Options{Backend: Postgres, DSN: "host=" + t.TempDir() + " dbname=none connect_timeout=5"})
	if err == nil || bad != nil {
		t.Errorf("Open of a missing server = %v, %v; want an error", bad, err)
	}
}

func TestOpenMaildir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Options{Backend: Maildir, DataDir: dir, Quota: func(context.Context, string) (int64, error) { return 10, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Reconcile(ctx); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	acct, err := s.Open(ctx, "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	// The quota func is the store's.
	if _, err := acct.Deliver(ctx, strings.NewReader("Subject: x\r\n\r\nmore than ten bytes\r\n"), mailstore.DeliverOptions{}); err == nil {
		t.Error("Deliver over the quota succeeded")
	}
	// Storage is under data_dir/accounts, as the README says.
	ents, err := os.ReadDir(filepath.Join(dir, "accounts"))
	if err != nil || len(ents) != 1 {
		t.Errorf("data_dir/accounts holds %v (%v), want one account directory", ents, err)
	}
}

func TestOpenUnknown(t *testing.T) {
	for _, name := range []string{"", "Maildir", "pg"} {
		s, err := Open(context.Background(), Options{Backend: name, DataDir: t.TempDir()})
		if err == nil || s != nil {
			t.Fatalf("Open(%q) = %v, %v; want an error", name, s, err)
		}
		if !strings.Contains(err.Error(), "known: maildir, postgres") {
			t.Errorf("Open(%q): %v; want the known backends named", name, err)
		}
	}
}

// TestOpenFails: a backend that cannot open gives an error and a nil
// Store, not a nil pointer inside a non-nil interface.
func TestOpenFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Options{Backend: Maildir, DataDir: file})
	if err == nil || s != nil {
		t.Fatalf("Open under a file = %v, %v; want a nil Store and an error", s, err)
	}
}
