// Package backend opens the mailstore backend the configuration names
// ([store] backend). It is the one place that imports backend packages:
// cmd/posthouse calls Open and gets a mailstore.Store, with its start-up
// Reconcile, and knows no backend by name beyond the string it passes.
//
// It is a subpackage because mailstore cannot import its backends (they
// import mailstore), and cmd should not: serve and admin would each have to
// know where a backend keeps its files. A new backend adds a case to Open,
// its name to Names, and the same name to config.StoreBackends.
package backend

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
	"github.com/posthouse/posthouse/mailstore/postgres"
)

// Maildir is the Maildir+SQLite backend (mailstore/maildir).
const Maildir = "maildir"

// Postgres is the PostgreSQL backend (mailstore/postgres).
const Postgres = "postgres"

// Names returns the backends Open knows.
func Names() []string { return []string{Maildir, Postgres} }

// Options configure Open.
type Options struct {
	// Backend is one of Names.
	Backend string
	// DataDir is Posthouse's data directory; each backend keeps its
	// storage under it (maildir: DataDir/accounts).
	DataDir string
	// DSN is the database of the postgres backend.
	DSN string
	// Pool, if set, is the process's PostgreSQL pool (pgdb.Open), used
	// instead of connecting to DSN; the caller closes it.
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	// Quota returns an account's quota in bytes; 0 or a nil func means
	// unlimited.
	Quota func(ctx context.Context, account string) (int64, error)
	// MessageQuota returns the most messages an account may hold; 0 or a
	// nil func means unlimited.
	MessageQuota func(ctx context.Context, account string) (int64, error)
}

// Open opens the backend opts names. The Store must be closed.
func Open(ctx context.Context, opts Options) (mailstore.Store, error) {
	switch opts.Backend {
	case Maildir:
		s, err := maildir.Open(ctx, filepath.Join(opts.DataDir, "accounts"), maildir.Options{
			Logger:       opts.Logger,
			Quota:        opts.Quota,
			MessageQuota: opts.MessageQuota,
		})
		if err != nil {
			return nil, err
		}
		return s, nil
	case Postgres:
		s, err := postgres.Open(ctx, postgres.Options{
			DSN:          opts.DSN,
			Pool:         opts.Pool,
			Logger:       opts.Logger,
			Quota:        opts.Quota,
			MessageQuota: opts.MessageQuota,
		})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("mailstore: unknown backend %q (known: %s)", opts.Backend, strings.Join(Names(), ", "))
}
