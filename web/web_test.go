package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSecurityHeaders(t *testing.T) {
	e := newTestServer(t)
	c := e.client(t)
	for _, path := range []string{"/login", "/static/style.css"} {
		r := c.get(path)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d", path, r.status)
		}
		for k, want := range map[string]string{
			"X-Frame-Options":        "DENY",
			"X-Content-Type-Options": "nosniff",
			"Referrer-Policy":        "same-origin",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
		csp := r.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
	if r := c.get("/login"); r.header.Get("Cache-Control") != "no-store" || strings.Contains(r.body, "<script") {
		t.Errorf("login page: Cache-Control %q, or a script", r.header.Get("Cache-Control"))
	}

	// The session cookie: HttpOnly, SameSite=Strict, with an expiry; Secure
	// over TLS.
	for _, tlsOn := range []bool{false, true} {
		var srv *httptest.Server
		if tlsOn {
			srv = httptest.NewTLSServer(e.web.AdminHandler())
		} else {
			srv = httptest.NewServer(e.web.AdminHandler())
		}
		defer srv.Close()
		hc := srv.Client()
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := hc.Get(srv.URL + "/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var token string
		for _, ck := range resp.Cookies() {
			if ck.Name == loginCookie {
				token = ck.Value
			}
		}
		form := url.Values{"address": {userAddr}, "password": {userPass}, "csrf": {token}}
		req, _ := http.NewRequest("POST", srv.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: loginCookie, Value: token})
		resp, err = hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var sess *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == sessionCookie {
				sess = ck
			}
		}
		if sess == nil {
			t.Fatalf("tls=%v: no session cookie (status %d)", tlsOn, resp.StatusCode)
		}
		if !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.MaxAge <= 0 || sess.Secure != tlsOn {
			t.Errorf("tls=%v: session cookie %+v", tlsOn, sess)
		}
	}
}

func TestLogin(t *testing.T) {
	e := newTestServer(t)
	for _, tc := range []struct {
		name       string
		address    string
		password   string
		csrf       string // "" : the page's
		wantStatus int
		wantText   string
		wantTo     string
	}{
		{name: "admin", address: adminAddr, password: adminPass, wantStatus: http.StatusSeeOther, wantTo: "/"},
		{name: "user", address: userAddr, password: userPass, wantStatus: http.StatusSeeOther, wantTo: "/"},
		{name: "wrong password", address: userAddr, password: "nope", wantStatus: http.StatusUnauthorized, wantText: "Wrong address or password"},
		{name: "unknown user", address: "who@example.test", password: "x", wantStatus: http.StatusUnauthorized, wantText: "Wrong address or password"},
		{name: "empty", address: "", password: "", wantStatus: http.StatusBadRequest, wantText: "Enter your address"},
		{name: "no CSRF token", address: userAddr, password: userPass, csrf: "forged", wantStatus: http.StatusForbidden, wantText: "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client(t)
			c.get("/login")
			form := url.Values{"address": {tc.address}, "password": {tc.password}}
			if tc.csrf != "" {
				form.Set("csrf", tc.csrf)
			}
			r := c.post("/login", form)
			if r.status != tc.wantStatus || !strings.Contains(r.body, tc.wantText) || r.location() != tc.wantTo {
				t.Fatalf("status %d, location %q, body %s", r.status, r.location(), excerpt(r.body))
			}
		})
	}
	// Landing pages: admins on the dashboard, users on their account.
	if r := e.client(t).login(adminAddr, adminPass); !strings.Contains(r.body, "<h1>Dashboard</h1>") {
		t.Errorf("admin lands on %s", excerpt(r.body))
	}
	if r := e.client(t).login(userAddr, userPass); !strings.Contains(r.body, "<h1>Your account</h1>") {
		t.Errorf("user lands on %s", excerpt(r.body))
	}

	// Throttling is auth's: after its limit the form says so.
	c := e.client(t)
	c.get("/login")
	var r response
	for range e.auth.throttleN + 1 {
		r = c.post("/login", url.Values{"address": {otherAddr}, "password": {"bad"}})
	}
	if r.status != http.StatusTooManyRequests || !strings.Contains(r.body, "Too many failed attempts") {
		t.Errorf("throttled: %d %s", r.status, excerpt(r.body))
	}
	if strings.Contains(e.log.String(), "bad") && strings.Contains(e.log.String(), "password=bad") {
		t.Error("a password reached the log")
	}
}

func TestLoginSecondFactor(t *testing.T) {
	e := newTestServer(t)
	e.auth.users[userAddr].TOTP = true
	e.auth.users[userAddr].recovery = []string{"rec-one-1111"}
	c := e.client(t)
	c.get("/login")
	r := c.post("/login", url.Values{"address": {userAddr}, "password": {userPass}})
	if r.location() != "/login/code" {
		t.Fatalf("after the password: %d %q", r.status, r.location())
	}
	// Half logged in: no account page yet.
	if r := c.get("/account"); r.status != http.StatusSeeOther || r.location() != "/login" {
		t.Errorf("account before the code: %d %q", r.status, r.location())
	}
	c.get("/login/code")
	if r := c.post("/login/code", url.Values{"code": {"000000"}}); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "Wrong code") {
		t.Errorf("wrong code: %d %s", r.status, excerpt(r.body))
	}
	if r := c.post("/login/code", url.Values{"code": {"rec-one-1111"}}); r.status != http.StatusSeeOther {
		t.Fatalf("recovery code: %d %s", r.status, excerpt(r.body))
	}
	if r := c.get("/account"); r.status != http.StatusOK {
		t.Errorf("account after the code: %d", r.status)
	}
	// A recovery code works once.
	c2 := e.client(t)
	c2.get("/login")
	c2.post("/login", url.Values{"address": {userAddr}, "password": {userPass}})
	c2.get("/login/code")
	if r := c2.post("/login/code", url.Values{"code": {"rec-one-1111"}}); r.status != http.StatusUnauthorized {
		t.Errorf("recovery code reused: %d", r.status)
	}
	// The code step expires.
	c3 := e.client(t)
	c3.get("/login")
	c3.post("/login", url.Values{"address": {userAddr}, "password": {userPass}})
	c3.get("/login/code")
	e.clock.add(codeStageTTL + time.Second)
	if r := c3.post("/login/code", url.Values{"code": {fakeTOTPCode}}); r.status != http.StatusForbidden {
		t.Errorf("late code: %d", r.status)
	}
}

func TestSessionExpiryAndLogout(t *testing.T) {
	e := newTestServer(t)
	c := e.client(t)
	c.login(userAddr, userPass)
	e.clock.add(59 * time.Minute)
	if r := c.get("/account"); r.status != http.StatusOK {
		t.Fatalf("within the idle time: %d", r.status)
	}
	e.clock.add(61 * time.Minute)
	if r := c.get("/account"); r.status != http.StatusSeeOther {
		t.Fatalf("after the idle time: %d", r.status)
	}
	c.login(userAddr, userPass)
	if r := c.post("/logout", nil); r.status != http.StatusSeeOther || r.location() != "/login" {
		t.Fatalf("logout: %d %q", r.status, r.location())
	}
	if r := c.get("/account"); r.status != http.StatusSeeOther {
		t.Errorf("after logout: %d", r.status)
	}
	// A disabled user's session ends at the next request.
	c.login(userAddr, userPass)
	e.auth.users[userAddr].Disabled = true
	if r := c.get("/account"); r.status != http.StatusSeeOther {
		t.Errorf("disabled user: %d", r.status)
	}
}

// postRoutes are every form's action, with a valid form where it matters.
var postRoutes = []struct {
	path  string
	admin bool
	form  url.Values
}{
	{"/account/password", false, url.Values{"current": {userPass}, "new": {"new password 1"}, "confirm": {"new password 1"}}},
	{"/account/app-passwords", false, url.Values{"name": {"Phone"}}},
	{"/account/app-passwords/revoke", false, url.Values{"id": {"1"}}},
	{"/account/2fa/enable", false, url.Values{"code": {fakeTOTPCode}}},
	{"/account/2fa/disable", false, url.Values{"password": {userPass}}},
	{"/account/vacation", false, url.Values{"subject": {"Away"}, "message": {"Back Monday"}}},
	{"/account/vacation/off", false, nil},
	{"/admin/domains/add", true, url.Values{"name": {"new.test"}}},
	{"/admin/domains/remove", true, url.Values{"name": {"example.test"}}},
	{"/admin/users/add", true, url.Values{"address": {"carl@example.test"}, "password": {"carl password"}}},
	{"/admin/users/" + otherAddr + "/quota", true, url.Values{"quota": {"1GiB"}}},
	{"/admin/users/" + otherAddr + "/disable", true, nil},
	{"/admin/users/" + otherAddr + "/enable", true, nil},
	{"/admin/users/" + otherAddr + "/password", true, url.Values{"password": {"reset password"}, "confirm": {"reset password"}}},
	{"/admin/users/" + otherAddr + "/role", true, url.Values{"role": {"admin"}}},
	{"/admin/users/" + otherAddr + "/sendas-add", true, url.Values{"address": {"sales@example.test"}}},
	{"/admin/users/" + otherAddr + "/sendas-remove", true, url.Values{"address": {"sales@example.test"}}},
	{"/admin/users/" + otherAddr + "/vacation", true, url.Values{"subject": {"Away"}, "message": {"Back Monday"}}},
	{"/admin/users/" + otherAddr + "/vacation/off", true, nil},
	{"/admin/users/" + otherAddr + "/sieve/save", true, url.Values{"name": {"s"}, "script": {"keep;"}}},
	{"/admin/users/" + otherAddr + "/sieve/activate", true, url.Values{"name": {""}}},
	{"/admin/users/" + otherAddr + "/sieve/delete", true, url.Values{"name": {"s"}}},
	{"/admin/aliases/add", true, url.Values{"address": {"sales@example.test"}, "targets": {userAddr}}},
	{"/admin/aliases/remove", true, url.Values{"address": {"sales@example.test"}}},
	{"/admin/queue/retry-all", true, nil},
	{"/admin/queue/0123456789abcdef/retry", true, nil},
	{"/admin/queue/0123456789abcdef/remove", true, nil},
	{"/admin/dkim/generate", true, url.Values{"domain": {"example.test"}, "algorithm": {"ed25519"}}},
	{"/admin/dkim/remove", true, url.Values{"domain": {"example.test"}, "selector": {"x"}}},
}

// TestCSRF: every form refuses a post without the session's token (a
// wrong one, or none) and changes nothing; so does a post from another
// origin.
func TestCSRF(t *testing.T) {
	e := newTestServer(t)
	c := e.client(t)
	c.login(adminAddr, adminPass)
	for _, rt := range postRoutes {
		for _, token := range []string{"", "forged-token"} {
			before, sieveBefore := e.auth.changes(), sieveState(t, e)
			r := c.post(rt.path, withCSRF(rt.form, token))
			if r.status != http.StatusForbidden {
				t.Errorf("%s with token %q: %d, want 403", rt.path, token, r.status)
			}
			if e.auth.changes() != before || sieveState(t, e) != sieveBefore {
				t.Errorf("%s with token %q changed something", rt.path, token)
			}
		}
	}
	// A right token from a foreign origin.
	c.get("/admin/domains")
	form := url.Values{"name": {"evil.test"}, "csrf": {c.csrf}}
	req, _ := http.NewRequest("POST", e.srv.URL+"/admin/domains/add", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	if r := c.do(req); r.status != http.StatusForbidden || e.auth.changes() != 0 {
		t.Errorf("foreign origin: %d, %d changes", r.status, e.auth.changes())
	}
}

func withCSRF(form url.Values, token string) url.Values {
	out := url.Values{}
	for k, v := range form {
		out[k] = v
	}
	out.Set("csrf", token)
	return out
}

// sieveState summarizes the sievestore for "nothing changed" checks.
func sieveState(t *testing.T, e *testEnv) string {
	t.Helper()
	var b strings.Builder
	for _, a := range []string{adminAddr, userAddr, otherAddr} {
		list, err := e.sieve.List(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			b.WriteString(a + "/" + s.Name)
			if s.Active {
				b.WriteString("*")
			}
		}
		if v, err := e.sieve.Vacation(context.Background(), a); err == nil {
			b.WriteString(a + " vacation " + v.Subject)
		}
	}
	return b.String()
}

// TestPermissions: a user reaches no admin page and no other user's data;
// nobody reaches anything without logging in; the account listener has
// no admin pages and no metrics.
func TestPermissions(t *testing.T) {
	e := newTestServer(t)
	adminGets := []string{"/admin", "/admin/domains", "/admin/users", "/admin/users/" + otherAddr, "/admin/users/" + otherAddr + "/sieve",
		"/admin/aliases", "/admin/queue", "/admin/dkim", "/admin/dns"}

	anon := e.client(t)
	for _, p := range append(adminGets, "/account", "/account/2fa", "/account/vacation") {
		if r := anon.get(p); r.status != http.StatusSeeOther || r.location() != "/login" {
			t.Errorf("anonymous GET %s: %d %q", p, r.status, r.location())
		}
	}
	for _, rt := range postRoutes {
		if r := anon.post(rt.path, rt.form); r.status != http.StatusForbidden {
			t.Errorf("anonymous POST %s: %d", rt.path, r.status)
		}
	}

	user := e.client(t)
	user.login(userAddr, userPass)
	for _, p := range adminGets {
		if r := user.get(p); r.status != http.StatusForbidden || !strings.Contains(r.body, "for administrators") {
			t.Errorf("user GET %s: %d", p, r.status)
		}
	}
	before := e.auth.changes()
	for _, rt := range postRoutes {
		if !rt.admin {
			continue
		}
		user.get("/account")
		if r := user.post(rt.path, rt.form); r.status != http.StatusForbidden {
			t.Errorf("user POST %s: %d", rt.path, r.status)
		}
	}
	if e.auth.changes() != before {
		t.Errorf("a user's admin posts changed something")
	}

	// Another user's app password cannot be revoked by id.
	ap, _, _ := e.auth.CreateAppPassword(context.Background(), otherAddr, "Bob's phone")
	user.get("/account")
	r := user.post("/account/app-passwords/revoke", url.Values{"id": {itoa(ap.ID)}})
	if r.status != http.StatusNotFound || len(e.auth.users[otherAddr].apps) != 1 {
		t.Errorf("revoke another user's app password: %d, %d left", r.status, len(e.auth.users[otherAddr].apps))
	}
	// Nor listed.
	if r := user.get("/account"); strings.Contains(r.body, "Bob&#39;s phone") || strings.Contains(r.body, "Bob's phone") {
		t.Error("another user's app password is listed")
	}
	// /metrics is on the admin listener, not for the account one.
	if r := anon.get("/metrics"); r.status != http.StatusOK || !strings.Contains(r.body, "posthouse_up") {
		t.Errorf("metrics: %d", r.status)
	}

	acct := newTestServer(t, accountOnly)
	c := acct.client(t)
	// An admin logging in there lands on /account, with no admin links.
	if r := c.login(adminAddr, adminPass); !strings.Contains(r.body, "<h1>Your account</h1>") || strings.Contains(r.body, `href="/admin`) {
		t.Errorf("admin on the account listener lands on %s", excerpt(r.body))
	}
	if r := c.get("/"); r.location() != "/account" {
		t.Errorf("account listener /: %d %q", r.status, r.location())
	}
	for _, p := range append(adminGets, "/metrics") {
		if r := c.get(p); r.status != http.StatusNotFound {
			t.Errorf("account listener GET %s: %d, want 404", p, r.status)
		}
	}
	if r := c.get("/account"); r.status != http.StatusOK {
		t.Errorf("account listener /account: %d", r.status)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestPagesRender: every page renders for whoever may see it, with the
// navigation that fits the role.
func TestPagesRender(t *testing.T) {
	e := newTestServer(t)
	if err := e.sieve.Put(context.Background(), otherAddr, "main", []byte("keep;")); err != nil {
		t.Fatal(err)
	}
	admin := e.client(t)
	admin.login(adminAddr, adminPass)
	for _, p := range []string{"/admin", "/admin/domains", "/admin/users", "/admin/users?domain=example.test", "/admin/users/" + otherAddr,
		"/admin/users/" + otherAddr + "/sieve", "/admin/users/" + otherAddr + "/sieve?name=main", "/admin/aliases", "/admin/queue",
		"/admin/dkim", "/admin/dns", "/account", "/account/2fa", "/account/vacation"} {
		r := admin.get(p)
		if r.status != http.StatusOK || !strings.Contains(r.body, `href="/admin/dns"`) || !strings.Contains(r.body, "</html>") {
			t.Errorf("admin GET %s: %d %s", p, r.status, excerpt(r.body))
		}
	}
	user := e.client(t)
	user.login(userAddr, userPass)
	for _, p := range []string{"/account", "/account/2fa", "/account/vacation"} {
		r := user.get(p)
		if r.status != http.StatusOK || strings.Contains(r.body, `href="/admin`) || !strings.Contains(r.body, userAddr) {
			t.Errorf("user GET %s: %d %s", p, r.status, excerpt(r.body))
		}
	}
	if r := admin.get("/admin/users/" + otherAddr + "/sieve?name=nope"); r.status != http.StatusNotFound {
		t.Errorf("missing script: %d", r.status)
	}
	if r := admin.get("/admin/users/nobody@example.test"); r.status != http.StatusNotFound {
		t.Errorf("missing user: %d", r.status)
	}
}

func TestSameOrigin(t *testing.T) {
	for _, tc := range []struct {
		name, origin, fetchSite string
		want                    bool
	}{
		{"no origin (old client, curl)", "", "", true},
		{"same host", "http://console.test:8080", "", true},
		{"other host", "http://evil.test", "cross-site", false},
		{"other port", "http://console.test:9999", "same-site", false},
		{"null, same-origin", "null", "same-origin", true},
		{"null, cross-site", "null", "cross-site", false},
		{"null, unknown", "null", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "http://console.test:8080/admin/domains/add", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.fetchSite != "" {
				r.Header.Set("Sec-Fetch-Site", tc.fetchSite)
			}
			if got := sameOrigin(r); got != tc.want {
				t.Errorf("sameOrigin = %v, want %v", got, tc.want)
			}
		})
	}
}
