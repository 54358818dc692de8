package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/queue"
)

// With [store] backend = "postgres" the queue lives in that database: a
// message queued on one node is listed by admin queue on another (its own
// data directory).
func TestQueueOnPostgresSharedByNodes(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	node := func() *config.Config {
		cfg := config.Default()
		cfg.DataDir = t.TempDir()
		cfg.Hostname = "mail.a.test"
		cfg.Store.Backend = "postgres"
		cfg.Store.DSN = dsn
		return cfg
	}
	a, b := node(), node()
	opts := queueOptions(a)
	if err := queuePostgres(ctx, a, &opts); err != nil {
		t.Fatal(err)
	}
	qa, err := queue.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer qa.Close()
	id, err := qa.Enqueue(ctx, "alice@a.test", []string{"bob@b.test"}, strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	env := &adminEnv{cfg: b, log: slog.New(slog.DiscardHandler), stdout: &out, stderr: &out}
	if err := runAdminQueue(ctx, env, []string{"list"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), id) || !strings.Contains(out.String(), "1 message(s)") {
		t.Errorf("admin queue list on node b:\n%s\nwant %s only", out.String(), id)
	}
	if err := runAdminQueue(ctx, env, []string{"remove", id}); err != nil {
		t.Fatal(err)
	}
	if _, err := qa.Get(ctx, id); err != queue.ErrNotFound {
		t.Errorf("after remove on node b, node a finds the message: %v", err)
	}
}
