package auth

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// testBackend opens the system tables of one test environment: each call
// of open is one more process (node) on the same database.
type testBackend struct {
	name string
	// setup prepares env's database (a path, or a PostgreSQL database).
	setup func(t testing.TB, env *testEnv)
	open  func(ctx context.Context, t testing.TB, env *testEnv, opts Options) (*DB, error)
}

var testBackends = []testBackend{
	{
		name:  "sqlite",
		setup: func(testing.TB, *testEnv) {},
		open: func(ctx context.Context, _ testing.TB, env *testEnv, opts Options) (*DB, error) {
			return Open(ctx, env.path, opts)
		},
	},
	{
		name:  "postgres",
		setup: func(t testing.TB, env *testEnv) { env.dsn = pgtest.NewDatabase(t) },
		open: func(ctx context.Context, t testing.TB, env *testEnv, opts Options) (*DB, error) {
			// Its own pool, as another posthouse process would have.
			pool, err := pgdb.Open(ctx, env.dsn)
			if err != nil {
				return nil, err
			}
			t.Cleanup(pool.Close)
			return OpenPostgres(ctx, pool, opts)
		},
	},
}

// forEachBackend runs a behaviour test against every backend, as subtests
// named after them; newTestDB picks the backend from that name.
func forEachBackend(t *testing.T, fn func(t *testing.T)) {
	for _, b := range testBackends {
		t.Run(b.name, fn)
	}
}

// backendOf is the backend of test t: the one named by a forEachBackend
// subtest in its name, else SQLite.
func backendOf(t testing.TB) testBackend {
	for _, part := range strings.Split(t.Name(), "/") {
		for _, b := range testBackends {
			if part == b.name {
				return b
			}
		}
	}
	return testBackends[0]
}
