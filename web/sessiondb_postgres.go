package web

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/internal/pgdb"
)

// sessionPGMigrations: the sessions table of web.sqlite, as web_sessions.
var sessionPGMigrations = [][]string{{
	`CREATE TABLE web_sessions (
		key     bytea PRIMARY KEY,
		address text NOT NULL,
		stage   integer NOT NULL,
		csrf    text NOT NULL,
		created bigint NOT NULL,
		seen    bigint NOT NULL
	)`,
	`CREATE INDEX web_sessions_address ON web_sessions (address)`,
}}

// OpenSessionDBPostgres keeps the sessions in the PostgreSQL database of
// pool (the postgres backend; Close does not close the pool), shared by
// every node behind the load balancer: a login on one node is valid on
// all, and a logout or a password change on one ends the sessions on all
// (each request reads its session from the database). A session's
// one-time message and a TOTP secret offered for enrolment still stay in
// the memory of the node that made them.
func OpenSessionDBPostgres(ctx context.Context, pool *pgxpool.Pool) (*SessionDB, error) {
	if err := pgdb.Migrate(ctx, pool, "web", sessionPGMigrations); err != nil {
		return nil, fmt.Errorf("web: sessions: %w", err)
	}
	db := pgdb.SQLDB(pool, 4, map[string]string{"sessions": "web_sessions"})
	return &SessionDB{write: db, read: db, close: db.Close, shared: true}, nil
}
