package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/internal/pgtest"
)

// TestServePostgresSystemTables: serve on the postgres backend with every
// per-user and per-site store on (Sieve, greylist, junk filter, SRS, web
// console, DKIM through the queue) keeps them in PostgreSQL, and makes none
// of their files in data_dir.
func TestServePostgresSystemTables(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	cfg := loopbackConfig(t)
	cfg.Store.Backend, cfg.Store.DSN = "postgres", dsn
	cfg.Inbound.Greylist, cfg.Inbound.JunkFilter, cfg.Queue.SRS = true, true, true
	rec := &lifecycleLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(rec)) }()
	for deadline := time.Now().Add(30 * time.Second); !slices.Contains(rec.get(), "started"); {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("serve did not start: %q", rec.get())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pool, err := pgdb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rows, err := pool.Query(context.Background(), `SELECT DISTINCT component FROM posthouse_migrations`)
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for rows.Next() {
		var c string
		rows.Scan(&c)
		have = append(have, c)
	}
	rows.Close()
	for _, c := range []string{"auth", "queue", "dkim", "sievestore", "greylist", "junk", "web", "srs"} {
		if !slices.Contains(have, c) {
			t.Errorf("no %s schema in PostgreSQL (have %v)", c, have)
		}
	}
	for _, f := range []string{"users.sqlite", "sieve.sqlite", greylistFile, "junk.sqlite", "web.sqlite", "srs.key"} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, f)); err == nil {
			t.Errorf("data_dir has %s with the postgres backend", f)
		}
	}
}
