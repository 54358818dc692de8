package main

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/junk"
	"github.com/posthouse/posthouse/mailstore"
)

// junkFilter is the built-in junk filter ([inbound] junk_filter): its
// statistics (data_dir/junk.sqlite), the learner imapd reports users'
// actions to, and the delivery filter.
type junkFilter struct {
	db      *junk.DB
	learner *junk.Learner
	filter  *junk.Filter
}

// openJunk opens the junk filter when it is on; nil when off. The learner
// is started by serve with the queue workers and stopped after the
// listeners; the database is closed with the others.
func openJunk(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, log *slog.Logger, store mailstore.Store) (*junkFilter, error) {
	if !cfg.Inbound.JunkFilter {
		return nil, nil
	}
	var db *junk.DB
	var err error
	if pool != nil {
		// The postgres backend: what users teach through one node
		// classifies on all.
		db, err = junk.OpenDBPostgres(ctx, pool, junk.DBOptions{})
	} else {
		db, err = junk.OpenDB(ctx, filepath.Join(cfg.DataDir, "junk.sqlite"), junk.DBOptions{})
	}
	if err != nil {
		return nil, err
	}
	learner, err := junk.NewLearner(junk.LearnerOptions{DB: db, Store: store, Hostname: cfg.Hostname, Logger: log})
	if err != nil {
		db.Close()
		return nil, err
	}
	filter, err := junk.NewFilter(junk.FilterOptions{DB: db, Hostname: cfg.Hostname, Threshold: cfg.Inbound.JunkThreshold, Logger: log})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &junkFilter{db: db, learner: learner, filter: filter}, nil
}

// filters is the junk filter's place in the pipeline: last, after the
// authentication policy and the milters.
func (j *junkFilter) filters() []delivery.Filter {
	if j == nil {
		return nil
	}
	return []delivery.Filter{j.filter}
}

// imapStore is the store imapd gets: with the junk filter on, one whose
// accounts report MOVE, COPY, APPEND and STORE to the learner.
func (a *app) imapStore() junk.Opener {
	if a.junk == nil {
		return a.store
	}
	return a.junk.learner.Wrap(a.store)
}
