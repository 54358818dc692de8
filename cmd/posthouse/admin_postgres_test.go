package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

// addrLog records the address of each "listening" line by proto.
type addrLog struct {
	mu    sync.Mutex
	addrs map[string]string
	attrs []slog.Attr
	root  *addrLog
}

func (h *addrLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *addrLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "listening" {
		return nil
	}
	attrs := map[string]string{}
	for _, a := range h.attrs {
		attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		return true
	})
	root := h.root
	root.mu.Lock()
	root.addrs[attrs["proto"]] = attrs["addr"]
	root.mu.Unlock()
	return nil
}

func (h *addrLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &addrLog{attrs: append(slices.Clone(h.attrs), attrs...), root: h.root}
}

func (h *addrLog) WithGroup(string) slog.Handler { return h }

func (h *addrLog) get(proto string) string {
	h.root.mu.Lock()
	defer h.root.mu.Unlock()
	return h.root.addrs[proto]
}

// TestServePostgresUsers: serve on the postgres backend authenticates
// against the users admin put in PostgreSQL, over POP3, and takes a
// password change made by admin at the next login.
func TestServePostgresUsers(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	cfg := loopbackConfig(t)
	cfg.Store.Backend, cfg.Store.DSN = "postgres", dsn
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	adminDB, err := auth.OpenPostgres(ctx, pool, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer adminDB.Close()
	if err := adminDB.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := adminDB.AddUser(ctx, "bob@example.com", "first-pass", 0); err != nil {
		t.Fatal(err)
	}

	rec := &addrLog{addrs: map[string]string{}}
	rec.root = rec
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- serve(sctx, cfg, slog.New(rec)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == ""; addr = rec.get("pop3") {
		if time.Now().After(deadline) {
			t.Fatal("serve did not listen on pop3")
		}
		time.Sleep(5 * time.Millisecond)
	}
	login := func(pw string) string {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(c)
		line := func() string {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("pop3: %v", err)
			}
			return l
		}
		line()
		fmt.Fprintf(c, "USER bob@example.com\r\n")
		line()
		fmt.Fprintf(c, "PASS %s\r\n", pw)
		reply := line()
		fmt.Fprintf(c, "QUIT\r\n")
		return reply
	}
	if r := login("first-pass"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("login with the password admin set: %q", r)
	}
	if err := adminDB.SetPassword(ctx, "bob@example.com", "second-pass"); err != nil {
		t.Fatal(err)
	}
	if r := login("first-pass"); !strings.HasPrefix(r, "-ERR") {
		t.Fatalf("old password after admin changed it: %q", r)
	}
	if r := login("second-pass"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("new password: %q", r)
	}
}
