// Package pgdb holds what every Posthouse user of PostgreSQL shares: one
// connection pool per process (Open) and numbered schema migrations per
// component (Migrate), so the mail store today, and the system tables and
// queue later, live in one database and upgrade in step.
//
// Migrations are recorded in posthouse_migrations (component, version).
// Migrate runs under a transaction-level advisory lock, so nodes starting
// together apply each step once; a step that fails rolls back whole.
package pgdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultMaxConns is the pool's size when the DSN does not set
// pool_max_conns. pgxpool's own default (the number of CPUs, at least 4)
// is too small for a mail server: a transaction that stores a message
// holds its connection while the client sends the message.
const DefaultMaxConns = 32

// Open connects a pool to dsn (a postgres:// URL or key=value string;
// pgxpool's pool_* parameters, such as pool_max_conns, are honoured) and
// checks that the server answers.
func Open(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgdb: parse dsn: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgdb: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgdb: connect: %w", err)
	}
	return pool, nil
}

// migrationLock is the advisory lock key Migrate holds ("PHMIGRAT").
const migrationLock = 0x50484d4947524154

// Migrate brings component's schema to len(steps): step i (from 0) is
// version i+1, applied once, in order, each in its own transaction with
// its version row. Never edit a step that has shipped; append a new one.
func Migrate(ctx context.Context, pool *pgxpool.Pool, component string, steps [][]string) error {
	for {
		done, err := migrateOne(ctx, pool, component, steps)
		if err != nil {
			return fmt.Errorf("pgdb: migrate %s: %w", component, err)
		}
		if done {
			return nil
		}
	}
}

// migrateOne applies the next step of component, if any, and reports
// whether the schema is up to date.
func migrateOne(ctx context.Context, pool *pgxpool.Pool, component string, steps [][]string) (done bool, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS posthouse_migrations (
			component text NOT NULL,
			version   integer NOT NULL,
			applied   timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (component, version))`); err != nil {
			return err
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM posthouse_migrations WHERE component = $1`, component).Scan(&have); err != nil {
			return err
		}
		if have > len(steps) {
			return fmt.Errorf("schema version %d is newer than this program's %d", have, len(steps))
		}
		if have == len(steps) {
			done = true
			return nil
		}
		for _, q := range steps[have] {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("step %d: %w", have+1, err)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO posthouse_migrations (component, version) VALUES ($1, $2)`, component, have+1)
		return err
	})
	return done, err
}
