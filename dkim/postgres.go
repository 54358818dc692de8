package dkim

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/internal/pgdb"
)

// pgMigrations is the PostgreSQL schema of the key store: the dkim_keys
// table queue.sqlite has, with the same columns. Never edit a step that
// has shipped; append a new one.
var pgMigrations = [][]string{{
	`CREATE TABLE dkim_keys (
		domain      text NOT NULL,
		selector    text NOT NULL,
		algorithm   text NOT NULL,
		private_key bytea NOT NULL,
		created     bigint NOT NULL,
		PRIMARY KEY (domain, selector)
	)`,
}}

// OpenPostgresKeys returns the key store in the PostgreSQL database of
// pool (the shared database of the postgres backend; Close does not close
// the pool), bringing its schema up to date: a key generated on one node
// signs the mail every node sends. now is the clock (nil: time.Now).
func OpenPostgresKeys(ctx context.Context, pool *pgxpool.Pool, now func() time.Time) (*Keys, error) {
	if now == nil {
		now = time.Now
	}
	if err := pgdb.Migrate(ctx, pool, "dkim", pgMigrations); err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	db := pgdb.SQLDB(pool, 4, nil)
	return &Keys{write: db, read: db, close: db.Close, now: now}, nil
}
