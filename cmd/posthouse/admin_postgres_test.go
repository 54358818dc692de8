package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/internal/pgtest"
)

// TestAdminPostgresSharedUsers: with the postgres backend, two nodes (two
// configurations with their own data_dir, one database) share the user
// database: what admin does on one, the other sees, and no users.sqlite is
// made.
func TestAdminPostgresSharedUsers(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	var cfgs [2]string
	var dirs [2]string
	for i := range cfgs {
		dir := t.TempDir()
		dirs[i] = filepath.Join(dir, "data")
		cfgs[i] = filepath.Join(dir, "p.toml")
		cfg := fmt.Sprintf("hostname = \"mail%d.a.test\"\ndata_dir = %q\n[listen]\npop3 = \"\"\n[store]\nbackend = \"postgres\"\ndsn = %q\n", i, dirs[i], dsn)
		if err := os.WriteFile(cfgs[i], []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	admin := func(node int, stdin string, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args = append([]string{"admin", "--config", cfgs[node]}, args...)
		if code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr); code != 0 {
			t.Fatalf("node %d: %v: exit %d\nstdout: %s\nstderr: %s", node, args, code, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	admin(0, "", "domain", "add", "a.test")
	admin(0, "secret-pass-1\n", "user", "add", "--password-stdin", "alice@a.test")
	if out := admin(1, "", "user", "list"); !regexp.MustCompile(`(?m)^alice@a\.test .* active `).MatchString(out) {
		t.Fatalf("node 1 does not list the user node 0 added:\n%s", out)
	}
	admin(1, "", "user", "disable", "alice@a.test")
	if out := admin(0, "", "user", "list"); !regexp.MustCompile(`(?m)^alice@a\.test .* disabled `).MatchString(out) {
		t.Fatalf("node 0 does not see the user disabled on node 1:\n%s", out)
	}

	// A running node (serve's auth.DB) refuses the disabled user, and lets
	// them in once another node enables them.
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	db, err := auth.OpenPostgres(ctx, pool, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	remote := netip.MustParseAddr("192.0.2.1")
	if _, err := db.Authenticate(ctx, "alice@a.test", "secret-pass-1", remote); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("disabled user's login = %v, want ErrBadCredentials", err)
	}
	admin(1, "", "user", "enable", "alice@a.test")
	if _, err := db.Authenticate(ctx, "alice@a.test", "secret-pass-1", remote); err != nil {
		t.Fatalf("after enable on node 1: %v", err)
	}
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "users.sqlite")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s/users.sqlite: %v, want none", dir, err)
		}
	}
}
