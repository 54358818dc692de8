package main

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/sievefilter"
	"github.com/posthouse/posthouse/sievestore"
)

// sievePath is the script store's database under data_dir.
func sievePath(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "sieve.sqlite") }

// openSieveStore opens users' scripts (data_dir/sieve.sqlite) the one way
// serve and admin share, so a script admin accepts is one serve runs. With
// the postgres backend (pool is not nil) they are in that database, shared
// by every node.
func openSieveStore(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, log *slog.Logger) (*sievestore.Store, error) {
	if pool != nil {
		return sievestore.OpenPostgres(ctx, pool, sievestore.Options{Logger: log})
	}
	return sievestore.Open(ctx, sievePath(cfg), sievestore.Options{Logger: log})
}

// sieveFilter is the Sieve delivery filter over the store: users'
// scripts and out-of-office, last in the pipeline. q sends vacation
// responses (the queue; redirects go through the pipeline's).
func sieveFilter(cfg *config.Config, log *slog.Logger, st *sievestore.Store, q sievefilter.Queue, store mailstore.Store) (delivery.Filter, error) {
	return sievefilter.New(sievefilter.Options{
		Store:     st,
		Queue:     q,
		Mailboxes: sievefilter.MailStore(store),
		Hostname:  cfg.Hostname,
		Logger:    log,
	})
}
