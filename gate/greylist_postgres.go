package gate

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/internal/pgdb"
)

// greyDB is where greylisting keeps its tables: greylist.sqlite or the
// PostgreSQL database of the postgres backend. Both run the same SQL (?
// placeholders; pgdb.SQLDB rewrites them and the table names).
type greyDB struct {
	// Write takes the writes, Read the reads (one pool for PostgreSQL).
	Write, Read *sql.DB
	// lock, if set, runs first in checkTriplet's transaction with the
	// triplet as its argument: SQLite's single writer orders two checks
	// of one triplet, on PostgreSQL this advisory lock does (two nodes
	// receiving the same retry at once pass it once).
	lock  string
	close func() error
}

// greyLock is the first key of the triplet advisory locks ("PHGL").
const greyLock = 0x5048474c

// greylistPGSchema: the tables of greylistSchema, named for a database
// other components share.
var greylistPGSchema = [][]string{{
	`CREATE TABLE greylist_triplets (
		net    text NOT NULL,
		sender text NOT NULL,
		rcpt   text NOT NULL,
		first  bigint NOT NULL,
		PRIMARY KEY (net, sender, rcpt)
	)`,
	`CREATE INDEX greylist_triplets_first ON greylist_triplets (first)`,
	`CREATE TABLE greylist_allowed (
		net    text NOT NULL,
		domain text NOT NULL,
		last   bigint NOT NULL,
		PRIMARY KEY (net, domain)
	)`,
	`CREATE INDEX greylist_allowed_last ON greylist_allowed (last)`,
}}

func openGreylistPostgres(ctx context.Context, pool *pgxpool.Pool) (greyDB, error) {
	if err := pgdb.Migrate(ctx, pool, "greylist", greylistPGSchema); err != nil {
		return greyDB{}, err
	}
	db := pgdb.SQLDB(pool, 8, map[string]string{"triplets": "greylist_triplets", "allowed": "greylist_allowed"})
	return greyDB{
		Write: db,
		Read:  db,
		lock:  fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d, hashtext(?))`, greyLock),
		close: db.Close,
	}, nil
}
