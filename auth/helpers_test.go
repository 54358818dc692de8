package auth

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/posthouse/posthouse/internal/logbuf"
)

// testArgon keeps unit tests fast; BenchmarkAuthenticate measures the real
// parameters.
var testArgon = argonParams{Memory: 64, Time: 1, Threads: 1, KeyLen: 32}

// fakeClock is a movable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type testEnv struct {
	db      *DB
	backend testBackend
	path    string // SQLite
	dsn     string // PostgreSQL
	clock   *fakeClock
	logs    *logbuf.Buffer
}

// newTestDB opens a database in a temp dir with a fake clock, cheap hashes
// and a captured debug log.
func newTestDB(t testing.TB, opts Options) *testEnv {
	t.Helper()
	env := &testEnv{clock: newFakeClock(), logs: &logbuf.Buffer{}, path: filepath.Join(t.TempDir(), "users.sqlite"), backend: backendOf(t)}
	env.backend.setup(t, env)
	if opts.Now == nil {
		opts.Now = env.clock.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	env.db = env.open(t, opts)
	return env
}

func (env *testEnv) open(t testing.TB, opts Options) *DB {
	t.Helper()
	if opts.Now == nil {
		opts.Now = env.clock.Now
	}
	db, err := env.backend.open(context.Background(), t, env, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	db.argon = testArgon
	return db
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// seed creates domains, users (password "pw-"+local part) and aliases.
func seed(t testing.TB, db *DB, domains, users []string, aliases map[string][]string) {
	t.Helper()
	ctx := context.Background()
	for _, d := range domains {
		must(t, db.AddDomain(ctx, d))
	}
	for _, u := range users {
		local, _ := splitAddress(u)
		if _, err := db.AddUser(ctx, u, "pw-"+local, 0); err != nil {
			t.Fatalf("AddUser %s: %v", u, err)
		}
	}
	// Insert aliases without the AddAlias checks, so tests can build loops
	// and dangling targets the way a hand-edited database could hold them.
	for a, ts := range aliases {
		_, domain := splitAddress(a)
		err := db.write(ctx, func(tx *sql.Tx) error {
			did, err := domainID(ctx, tx, domain)
			if err != nil {
				return err
			}
			var id int64
			err = tx.QueryRowContext(ctx, `INSERT INTO aliases (address, domain_id, created) VALUES (?, ?, 0) RETURNING id`, a, did).Scan(&id)
			if err != nil {
				return err
			}
			for i, tg := range ts {
				if _, err := tx.ExecContext(ctx, `INSERT INTO alias_targets (alias_id, position, target) VALUES (?, ?, ?)`, id, i, tg); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("alias %s: %v", a, err)
		}
	}
}
