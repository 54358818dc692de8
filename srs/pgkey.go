package srs

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/internal/pgdb"
)

// pgMigrations: the one key of every node, in one row.
var pgMigrations = [][]string{{
	`CREATE TABLE srs_key (
		id      integer PRIMARY KEY CHECK (id = 1),
		secret  bytea NOT NULL CHECK (length(secret) >= 16),
		created timestamptz NOT NULL DEFAULT now()
	)`,
}}

// LoadKeyPostgres returns the secret kept in the PostgreSQL database of
// pool (the shared database of the postgres backend), so that every node
// rewrites with one key and verifies the bounces to addresses any node
// made. When the database holds none yet it first stores seed (a node's
// srs.key from before the move, so its addresses stay valid) or, seed
// nil, 32 random bytes; stored reports whether this call stored it. Nodes
// starting at once agree on one key: the row is inserted only if absent,
// then read.
func LoadKeyPostgres(ctx context.Context, pool *pgxpool.Pool, seed []byte) (key []byte, stored bool, err error) {
	if err := pgdb.Migrate(ctx, pool, "srs", pgMigrations); err != nil {
		return nil, false, fmt.Errorf("srs: %w", err)
	}
	if seed == nil {
		seed = make([]byte, keyLen)
		if _, err := rand.Read(seed); err != nil {
			return nil, false, fmt.Errorf("srs: key: %w", err)
		}
	} else if len(seed) < MinKeyLen {
		return nil, false, fmt.Errorf("srs: key: want at least %d bytes", MinKeyLen)
	}
	tag, err := pool.Exec(ctx, `INSERT INTO srs_key (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING`, seed)
	if err != nil {
		return nil, false, fmt.Errorf("srs: key: %w", err)
	}
	if err := pool.QueryRow(ctx, `SELECT secret FROM srs_key WHERE id = 1`).Scan(&key); err != nil {
		return nil, false, fmt.Errorf("srs: key: %w", err)
	}
	return key, tag.RowsAffected() == 1, nil
}
