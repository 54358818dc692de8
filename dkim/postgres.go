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

// pgConns is the size of the key store's own pool.
const pgConns = 2

// OpenPostgresKeys returns the key store in the PostgreSQL database of
// pool (the shared database of the postgres backend), bringing its schema
// up to date: a key generated on one node signs the mail every node sends.
// now is the clock (nil: time.Now).
//
// The store connects with pool's settings but a small pool of its own,
// closed by Close: the queue signs inside its enqueue transaction, which
// holds one of pool's connections, so keys read from pool itself could
// wait forever once every connection is held by an enqueue.
func OpenPostgresKeys(ctx context.Context, pool *pgxpool.Pool, now func() time.Time) (*Keys, error) {
	if now == nil {
		now = time.Now
	}
	if err := pgdb.Migrate(ctx, pool, "dkim", pgMigrations); err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	cfg := pool.Config().Copy()
	cfg.MaxConns, cfg.MinConns = pgConns, 0
	own, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	db := pgdb.SQLDB(own, pgConns, nil)
	closeAll := func() error {
		err := db.Close()
		own.Close()
		return err
	}
	return &Keys{write: db, read: db, close: closeAll, now: now}, nil
}

// CopyTo copies every key into dst (queue.sqlite's into PostgreSQL,
// posthouse admin store copy). A key dst has (same domain and selector) is
// kept as it is, so running it again changes nothing; copied and kept
// count the keys.
func (ks *Keys) CopyTo(ctx context.Context, dst *Keys) (copied, kept int, err error) {
	rows, err := ks.read.QueryContext(ctx, `SELECT domain, selector, algorithm, private_key, created FROM dkim_keys ORDER BY domain, selector`)
	if err != nil {
		return 0, 0, fmt.Errorf("dkim: copy: %w", err)
	}
	type row struct {
		domain, selector, algorithm string
		der                         []byte
		created                     int64
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.domain, &r.selector, &r.algorithm, &r.der, &r.created); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("dkim: copy: %w", err)
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("dkim: copy: %w", err)
	}
	tx, err := dst.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("dkim: copy: %w", err)
	}
	defer tx.Rollback()
	for _, r := range all {
		res, err := tx.ExecContext(ctx, `INSERT INTO dkim_keys (domain, selector, algorithm, private_key, created) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (domain, selector) DO NOTHING`, r.domain, r.selector, r.algorithm, r.der, r.created)
		if err != nil {
			return 0, 0, fmt.Errorf("dkim: copy %s._domainkey.%s: %w", r.selector, r.domain, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			copied++
		} else {
			kept++
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("dkim: copy: %w", err)
	}
	return copied, kept, nil
}
