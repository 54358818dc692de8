package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/mailstore/backend"
)

// openUserDB opens the system database of users, domains and aliases:
// users.sqlite under data_dir, or, with [store] backend = "postgres", its
// tables in that PostgreSQL database, shared by every node (so admin on one
// node acts for all). pool is then the process's PostgreSQL pool, for the
// mailstore too; the caller closes it after everything that uses it. It is
// nil for the maildir backend.
func openUserDB(ctx context.Context, cfg *config.Config, opts auth.Options) (*auth.DB, *pgxpool.Pool, error) {
	if cfg.Store.Backend != backend.Postgres {
		db, err := auth.Open(ctx, filepath.Join(cfg.DataDir, "users.sqlite"), opts)
		return db, nil, err
	}
	pool, err := pgdb.Open(ctx, cfg.Store.DSN)
	if err != nil {
		return nil, nil, fmt.Errorf("store.dsn: %w", err)
	}
	db, err := auth.OpenPostgres(ctx, pool, opts)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return db, pool, nil
}
