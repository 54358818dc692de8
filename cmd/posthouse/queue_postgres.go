package main

import (
	"context"
	"fmt"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/queue"
)

// queuePostgres puts the queue in the store's PostgreSQL database when
// [store] backend is "postgres", so that every node delivers from, and
// admin queue sees, one queue. The queue gets a pool of its own, closed
// with it.
func queuePostgres(ctx context.Context, cfg *config.Config, opts *queue.Options) error {
	if cfg.Store.Backend != "postgres" {
		return nil
	}
	pool, err := pgdb.Open(ctx, cfg.Store.DSN)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	opts.Postgres, opts.ClosePostgres = pool, true
	return nil
}
