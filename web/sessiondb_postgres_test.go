package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestSessionsSharedNodes: with the sessions in PostgreSQL, two nodes (two
// Servers with their own SessionDB on one database) behind a load
// balancer: a login made on A is valid on B, with its CSRF token; a logout
// on B ends it on A, which had it in memory.
func TestSessionsSharedNodes(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	node := func() *SessionDB {
		pool, err := pgdb.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		db, err := OpenSessionDBPostgres(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	dbA, dbB := node(), node()
	e := newTestServer(t, func(o *Options, _ *testEnv) { o.Sessions = dbA })
	srvA := e.srv
	optsB := e.web.opts
	optsB.Sessions = dbB
	b, err := New(optsB)
	if err != nil {
		t.Fatal(err)
	}
	srvB := httptest.NewServer(b.AdminHandler())
	t.Cleanup(srvB.Close)

	c := e.client(t)
	c.login(userAddr, userPass)
	if r := c.get("/account"); r.status != http.StatusOK {
		t.Fatalf("on A after login: %d", r.status)
	}
	e.srv = srvB
	if r := c.get("/account"); r.status != http.StatusOK {
		t.Fatalf("on B, logged in on A: %d", r.status)
	}
	if r := c.post("/account/app-passwords", map[string][]string{"name": {"Phone"}}); r.status != http.StatusOK {
		t.Errorf("form on B with A's session: %d", r.status)
	}
	c.post("/logout", nil)
	e.srv = srvA
	if r := c.get("/account"); r.status != http.StatusSeeOther {
		t.Errorf("on A after logout on B: %d, want a redirect to the login", r.status)
	}
}
