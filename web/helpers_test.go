package web

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dns/dnstest"
	"github.com/posthouse/posthouse/queue"
	"github.com/posthouse/posthouse/sievestore"
)

// Test users.
const (
	adminAddr = "boss@example.test"
	adminPass = "admin password 1"
	userAddr  = "ann@example.test"
	userPass  = "ann password 22"
	otherAddr = "bob@example.test"
	otherPass = "bob password 333"
)

// syncBuffer is a log sink tests read while handlers write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// clock is a movable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type testEnv struct {
	srv     *httptest.Server
	web     *Server
	auth    *fakeAuth
	sieve   *sievestore.Store
	queue   *queue.Queue
	dns     *dnstest.Server
	log     *syncBuffer
	clock   *clock
	account bool // srv serves AccountHandler
}

type envOption func(*Options, *testEnv)

// accountOnly serves AccountHandler instead of AdminHandler.
func accountOnly(_ *Options, e *testEnv) { e.account = true }

// newTestServer starts the console over a fake auth with three users (an
// admin, ann, bob), a real sievestore and queue in a temp dir, and a
// loopback DNS server.
func newTestServer(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e := &testEnv{auth: newFakeAuth(), log: &syncBuffer{}, clock: &clock{t: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}}
	e.auth.addUser(adminAddr, adminPass, true)
	e.auth.addUser(userAddr, userPass, false)
	e.auth.addUser(otherAddr, otherPass, false)
	var err error
	if e.sieve, err = sievestore.Open(ctx, filepath.Join(dir, "sieve.sqlite"), sievestore.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.sieve.Close() })
	if e.queue, err = queue.Open(ctx, queue.Options{DataDir: dir, Hostname: "mail.example.test"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.queue.Close() })
	e.dns = dnstest.NewServer(t)
	resolver, err := dns.New(dns.Options{Server: e.dns.Addr})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Logger:    slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hostname:  "mail.example.test",
		Accounts:  e.auth,
		Directory: e.auth,
		Queue:     e.queue,
		DKIM:      e.queue.DKIM(),
		Sieve:     e.sieve,
		Usage: func(_ context.Context, account string) (int64, int64, error) {
			u, err := e.auth.User(ctx, account)
			return 1 << 20, u.QuotaBytes, err
		},
		Last24h:  func(time.Time) Traffic { return Traffic{In: 12, Out: 7, Rejected: 3} },
		Metrics:  http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "posthouse_up 1\n") }),
		Resolver: resolver,
		Ports:    dns.Ports{Submissions: 465, IMAPS: 993},
		Now:      e.clock.now,
	}
	for _, opt := range opts {
		opt(&o, e)
	}
	if e.web, err = New(o); err != nil {
		t.Fatal(err)
	}
	h := e.web.AdminHandler()
	if e.account {
		h = e.web.AccountHandler()
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			for _, line := range strings.Split(e.log.String(), "\n") {
				if strings.Contains(line, "level=ERROR") {
					t.Log(line)
				}
			}
		}
	})
	return e
}

// client is one browser: a cookie jar, no redirects followed (tests see
// each step), and the CSRF token of the last page.
type client struct {
	t    *testing.T
	e    *testEnv
	http *http.Client
	csrf string
}

func (e *testEnv) client(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, e: e, http: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

type response struct {
	status int
	body   string
	header http.Header
}

func (r response) location() string { return r.header.Get("Location") }

func (c *client) do(req *http.Request) response {
	c.t.Helper()
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return response{status: resp.StatusCode, body: string(b), header: resp.Header}
}

func (c *client) get(path string) response {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.e.srv.URL+path, nil)
	return c.do(req)
}

// post sends form with the page's CSRF token unless form sets "csrf".
func (c *client) post(path string, form url.Values) response {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", c.csrf)
	}
	req, _ := http.NewRequest("POST", c.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// follow GETs a redirect's target.
func (c *client) follow(r response) response {
	c.t.Helper()
	if r.status != http.StatusSeeOther && r.status != http.StatusFound {
		c.t.Fatalf("want a redirect, got %d: %s", r.status, excerpt(r.body))
	}
	return c.get(r.location())
}

// login logs in with the password (and, when asked, the fake's TOTP code)
// and returns the landing page.
func (c *client) login(address, password string) response {
	c.t.Helper()
	c.get("/login")
	r := c.post("/login", url.Values{"address": {address}, "password": {password}})
	if r.status != http.StatusSeeOther {
		c.t.Fatalf("login %s: %d %s", address, r.status, excerpt(r.body))
	}
	if r.location() == "/login/code" {
		c.get("/login/code")
		r = c.post("/login/code", url.Values{"code": {fakeTOTPCode}})
		if r.status != http.StatusSeeOther {
			c.t.Fatalf("login code %s: %d %s", address, r.status, excerpt(r.body))
		}
	}
	r = c.follow(r)
	if r.status == http.StatusSeeOther {
		r = c.follow(r)
	}
	return r
}

// excerpt shortens a page for a failure message: the error paragraph if
// there is one.
func excerpt(body string) string {
	if i := strings.Index(body, `class="error"`); i >= 0 {
		end := min(len(body), i+300)
		return body[i:end]
	}
	if len(body) > 400 {
		return body[:400] + "…"
	}
	return body
}
