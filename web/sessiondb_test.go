package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"
)

// TestSessionsSurviveRestart: with a SessionDB, a login made by one
// Server is honoured by the next (a restart), a logout ends it in both,
// and expiry holds across the restart.
func TestSessionsSurviveRestart(t *testing.T) {
	db, err := OpenSessionDB(context.Background(), filepath.Join(t.TempDir(), "web.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := newTestServer(t, func(o *Options, _ *testEnv) { o.Sessions = db })
	restart := func() {
		t.Helper()
		s, err := New(e.web.opts)
		if err != nil {
			t.Fatal(err)
		}
		e.web = s
		e.srv = httptest.NewServer(s.AdminHandler())
		t.Cleanup(e.srv.Close)
	}
	c := e.client(t)
	c.login(userAddr, userPass)
	restart()
	r := c.get("/account")
	if r.status != http.StatusOK {
		t.Fatalf("after a restart: %d", r.status)
	}
	// The CSRF token survived too: a form posts.
	if r := c.post("/account/app-passwords", map[string][]string{"name": {"Phone"}}); r.status != http.StatusOK {
		t.Errorf("form after a restart: %d", r.status)
	}
	// Logout ends it for the next restart as well.
	c.post("/logout", nil)
	restart()
	if r := c.get("/account"); r.status != http.StatusSeeOther {
		t.Errorf("after logout and restart: %d", r.status)
	}
	// Idle expiry is kept across a restart.
	c.login(userAddr, userPass)
	e.clock.add(2 * time.Hour)
	restart()
	if r := c.get("/account"); r.status != http.StatusSeeOther {
		t.Errorf("expired session after restart: %d", r.status)
	}
	// A password change ends the user's other sessions, stored ones too.
	c.login(userAddr, userPass)
	other := e.client(t)
	other.login(userAddr, userPass)
	c.get("/account")
	c.post("/account/password", map[string][]string{"current": {userPass}, "new": {"changed pass 1"}, "confirm": {"changed pass 1"}})
	restart()
	if r := other.get("/account"); r.status != http.StatusSeeOther {
		t.Errorf("other browser after a password change and restart: %d", r.status)
	}
	if r := c.get("/account"); r.status != http.StatusOK {
		t.Errorf("the browser that changed it: %d", r.status)
	}
}
