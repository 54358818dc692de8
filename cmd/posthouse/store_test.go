package main

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"testing"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/mailstore/backend"
)

// TestMain stops the PostgreSQL a test started (internal/pgtest).
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestStoreBackendsAgree: every store.backend the configuration accepts
// opens, and every backend that opens can be configured.
func TestStoreBackendsAgree(t *testing.T) {
	if a, b := slices.Sorted(slices.Values(config.StoreBackends)), slices.Sorted(slices.Values(backend.Names())); !slices.Equal(a, b) {
		t.Fatalf("config accepts %v, mailstore/backend knows %v", a, b)
	}
	for _, name := range config.StoreBackends {
		cfg := config.Default()
		cfg.DataDir = t.TempDir()
		cfg.Store.Backend = name
		if name == "postgres" {
			cfg.Store.DSN = pgtest.NewDatabase(t)
		}
		s, err := backend.Open(context.Background(), storeOptions(cfg, slog.New(slog.DiscardHandler), nil))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if err := s.Reconcile(context.Background()); err != nil {
			t.Errorf("%s: Reconcile: %v", name, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
	}
}
