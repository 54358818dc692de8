package sievestore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/internal/pgdb"
)

// sqlDB is where the tables live: sieve.sqlite (Open) or the PostgreSQL
// database several nodes share (OpenPostgres). Both hold the same tables
// and run the same SQL, written with ? placeholders; only the locking of
// writers differs.
type sqlDB struct {
	// Write takes the write transactions, Read the reads. For SQLite,
	// Write has one connection and starts its transactions with BEGIN
	// IMMEDIATE, so writers run one at a time; for PostgreSQL both are
	// the same pool, and lock serialises the writers of one account.
	Write, Read *sql.DB
	// lock, if set, is run first in every write transaction with the
	// account as its argument: the read-then-write checks of Put (the
	// quota), SetActive, Rename and ClaimResponse rely on it.
	lock  string
	close func() error
}

func (db *sqlDB) lockAccount(ctx context.Context, tx *sql.Tx, account string) error {
	if db.lock == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, db.lock, account)
	return err
}

// pgComponent names the schema in posthouse_migrations.
const pgComponent = "sievestore"

// pgMaxConns is how many of the shared pool's connections the store holds
// at most.
const pgMaxConns = 8

// pgAccountLock is the first key of the per-account advisory locks taken
// by writers ("PHSV"); the second is the hash of the account.
const pgAccountLock = 0x50485356

// pgMigrations is the PostgreSQL schema: the same tables and columns as
// the SQLite migrations. active stays an integer (0 or 1) so that both run
// the same SQL. Never edit a step that has shipped; append a new one.
var pgMigrations = [][]string{{
	`CREATE TABLE sieve_scripts (
		account  text NOT NULL,
		name     text NOT NULL,
		source   bytea NOT NULL,
		hash     bytea NOT NULL,
		active   integer NOT NULL DEFAULT 0,
		modified bigint NOT NULL,
		PRIMARY KEY (account, name)
	)`,
	`CREATE UNIQUE INDEX sieve_scripts_active ON sieve_scripts (account) WHERE active = 1`,
	`CREATE TABLE sieve_vacations (
		account  text PRIMARY KEY,
		subject  text NOT NULL,
		message  text NOT NULL,
		start    bigint NOT NULL,
		until    bigint NOT NULL,
		period   bigint NOT NULL,
		modified bigint NOT NULL
	)`,
	`CREATE TABLE sieve_duplicates (
		account text NOT NULL,
		id      text NOT NULL,
		expires bigint NOT NULL,
		PRIMARY KEY (account, id)
	)`,
	`CREATE INDEX sieve_duplicates_expires ON sieve_duplicates (account, expires)`,
	`CREATE TABLE sieve_responses (
		account text NOT NULL,
		handle  text NOT NULL,
		sender  text NOT NULL,
		expires bigint NOT NULL,
		PRIMARY KEY (account, handle, sender)
	)`,
	`CREATE INDEX sieve_responses_expires ON sieve_responses (account, expires)`,
}}

// pgTables maps the tables' names in the package's SQL (SQLite's) to
// their names in the PostgreSQL database, which other components share.
var pgTables = map[string]string{
	"scripts":    "sieve_scripts",
	"vacations":  "sieve_vacations",
	"duplicates": "sieve_duplicates",
	"responses":  "sieve_responses",
}

// OpenPostgres opens the store in the PostgreSQL database of pool (the
// process's shared pool, pgdb.Open; Close does not close it) and brings
// its schema up to date. Every node opening the same database runs the
// same scripts, with one out-of-office and one record of the responses
// sent.
func OpenPostgres(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Store, error) {
	opts = withDefaults(opts)
	if err := pgdb.Migrate(ctx, pool, pgComponent, pgMigrations); err != nil {
		return nil, fmt.Errorf("sievestore: %w", err)
	}
	sdb := pgdb.SQLDB(pool, pgMaxConns, pgTables)
	return open(ctx, &sqlDB{
		Write: sdb,
		Read:  sdb,
		lock:  fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d, hashtext(?))`, pgAccountLock),
		close: sdb.Close,
	}, opts)
}
