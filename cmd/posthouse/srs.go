package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/srs"
)

// srsKeyPath is where the SRS key is kept per node (the default backend).
func srsKeyPath(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "srs.key") }

// openSRS builds the Sender Rewriting Scheme of [queue] srs: nil when it is
// off. Its key is made on first start and kept in data_dir/srs.key (0600);
// the queue rewrites with it and smtpd reverses bounces with it. With the
// postgres backend (pool not nil) the key is in that database, one for
// every node, so a bounce reaching any node verifies; the first node to
// start there brings its srs.key, if it has one.
func openSRS(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, log *slog.Logger) (*srs.Rewriter, error) {
	if !cfg.Queue.SRS {
		return nil, nil
	}
	var key []byte
	var err error
	if pool == nil {
		key, err = srs.LoadKey(srsKeyPath(cfg))
	} else {
		var seed []byte
		if seed, err = srs.ReadKey(srsKeyPath(cfg)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		var stored bool
		key, stored, err = srs.LoadKeyPostgres(ctx, pool, seed)
		if stored && seed != nil {
			log.Info("srs: this node's srs.key is now the key of every node", "proto", "queue")
		}
	}
	if err != nil {
		return nil, err
	}
	rw, err := srs.New(srs.Options{Domain: cmp.Or(cfg.Queue.SRSDomain, cfg.Hostname), Secret: key})
	if err != nil {
		return nil, fmt.Errorf("[queue] srs: %w", err)
	}
	return rw, nil
}
