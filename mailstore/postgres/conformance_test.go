package postgres

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/storetest"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	stopBenchServer()
	os.Exit(code)
}

// openTestStore opens a Store over dsn; the test closes it (or the suite
// does).
func openTestStore(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	return s
}

// TestConformance runs the mailstore conformance suite against the
// PostgreSQL backend, each subtest on a database of its own. Reopen is a
// restart: a new Store over the same database. There is no Plant: bodies
// and rows commit together, so nothing can be stored behind the index's
// back.
func TestConformance(t *testing.T) {
	var (
		mu     sync.Mutex
		stores = map[mailstore.Store]Options{}
	)
	open := func(t *testing.T, o Options) mailstore.Store {
		s := openTestStore(t, o)
		mu.Lock()
		stores[s] = o
		mu.Unlock()
		return s
	}
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, cfg storetest.Config) mailstore.Store {
			return open(t, Options{DSN: pgtest.NewDatabase(t) + " pool_max_conns=4", Quota: cfg.Quota, MessageQuota: cfg.MessageQuota})
		},
		Reopen: func(t *testing.T, s mailstore.Store) mailstore.Store {
			mu.Lock()
			o, ok := stores[s]
			mu.Unlock()
			if !ok {
				t.Fatalf("store %p was not opened by the backend", s)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close before reopening: %v", err)
			}
			return open(t, o)
		},
	})
}
