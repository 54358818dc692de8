package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/queue"
)

// formCase is one form post: bad input must get its message, a 4xx and no
// change; good input a redirect (or page) and the change check.
type formCase struct {
	name       string
	page       string // GET first (for the token)
	path       string
	form       url.Values
	wantStatus int
	wantText   string                         // on the response, or the page redirected to
	check      func(t *testing.T, e *testEnv) // after a good post
}

func runForms(t *testing.T, e *testEnv, c *client, cases []formCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.get(tc.page)
			before, sieveBefore := e.auth.changes(), sieveState(t, e)
			r := c.post(tc.path, tc.form)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tc.wantStatus, excerpt(r.body))
			}
			body := r.body
			if r.status == http.StatusSeeOther {
				body = c.follow(r).body
			}
			if !strings.Contains(body, tc.wantText) {
				t.Errorf("response lacks %q: %s", tc.wantText, excerpt(body))
			}
			if r.status >= 400 {
				if !strings.Contains(body, `class="error"`) {
					t.Errorf("no error message shown")
				}
				if e.auth.changes() != before || sieveState(t, e) != sieveBefore {
					t.Errorf("bad input changed something")
				}
			}
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
}

func TestAdminForms(t *testing.T) {
	e := newTestServer(t)
	c := e.client(t)
	c.login(adminAddr, adminPass)
	bob := "/admin/users/" + otherAddr
	runForms(t, e, c, []formCase{
		{"domain: bad name", "/admin/domains", "/admin/domains/add", url.Values{"name": {"not a domain"}}, 400, "not a valid domain", nil},
		{"domain: exists", "/admin/domains", "/admin/domains/add", url.Values{"name": {"example.test"}}, 400, "exists already", nil},
		{"domain: add", "/admin/domains", "/admin/domains/add", url.Values{"name": {"New.Test"}}, 303, "Added domain", func(t *testing.T, e *testEnv) {
			if ok, _ := (&Server{opts: Options{Directory: e.auth}}).localDomain(context.Background(), "new.test"); !ok {
				t.Error("domain not added")
			}
		}},
		{"domain: remove non-empty", "/admin/domains", "/admin/domains/remove", url.Values{"name": {"example.test"}}, 400, "still has users", nil},
		{"domain: remove", "/admin/domains", "/admin/domains/remove", url.Values{"name": {"new.test"}}, 303, "Removed domain", nil},

		{"user: bad address", "/admin/users", "/admin/users/add", url.Values{"address": {"no at sign"}, "password": {"long enough"}}, 400, "not a valid address", nil},
		{"user: foreign domain", "/admin/users", "/admin/users/add", url.Values{"address": {"x@elsewhere.test"}, "password": {"long enough"}}, 400, "no such domain", nil},
		{"user: short password", "/admin/users", "/admin/users/add", url.Values{"address": {"carl@example.test"}, "password": {"short"}}, 400, "at least 8", nil},
		{"user: bad quota", "/admin/users", "/admin/users/add", url.Values{"address": {"carl@example.test"}, "password": {"long enough"}, "quota": {"lots"}}, 400, "quota must be", nil},
		{"user: exists", "/admin/users", "/admin/users/add", url.Values{"address": {userAddr}, "password": {"long enough"}}, 400, "exists already", nil},
		{"user: add admin", "/admin/users", "/admin/users/add", url.Values{"address": {"Carl@example.test"}, "password": {"long enough"}, "quota": {"2GiB"}, "admin": {"on"}}, 303, "Added user carl@example.test", func(t *testing.T, e *testEnv) {
			u := e.auth.users["carl@example.test"]
			if u == nil || !u.Admin || u.QuotaBytes != 2<<30 || u.password != "long enough" {
				t.Errorf("carl: %+v", u)
			}
		}},
		{"user: quota bad", bob, bob + "/quota", url.Values{"quota": {"-1"}}, 400, "quota must be", nil},
		{"user: quota", bob, bob + "/quota", url.Values{"quota": {"500MB"}}, 303, "Quota set", func(t *testing.T, e *testEnv) {
			if e.auth.users[otherAddr].QuotaBytes != 500_000_000 {
				t.Errorf("quota %d", e.auth.users[otherAddr].QuotaBytes)
			}
		}},
		{"user: disable self", "/admin/users/" + adminAddr, "/admin/users/" + adminAddr + "/disable", nil, 400, "your own account", nil},
		{"user: disable", bob, bob + "/disable", nil, 303, "User disabled", func(t *testing.T, e *testEnv) {
			if !e.auth.users[otherAddr].Disabled {
				t.Error("not disabled")
			}
		}},
		{"user: enable", bob, bob + "/enable", nil, 303, "User enabled", nil},
		{"user: reset mismatch", bob, bob + "/password", url.Values{"password": {"new password"}, "confirm": {"other password"}}, 400, "differ", nil},
		{"user: reset", bob, bob + "/password", url.Values{"password": {"new password"}, "confirm": {"new password"}}, 303, "Password reset", func(t *testing.T, e *testEnv) {
			if e.auth.users[otherAddr].password != "new password" {
				t.Error("password not set")
			}
		}},
		{"user: bad role", bob, bob + "/role", url.Values{"role": {"root"}}, 400, "admin or user", nil},
		{"user: demote self", "/admin/users/" + adminAddr, "/admin/users/" + adminAddr + "/role", url.Values{"role": {"user"}}, 400, "your own admin role", nil},
		{"user: role", bob, bob + "/role", url.Values{"role": {"admin"}}, 303, "Role set to admin", func(t *testing.T, e *testEnv) {
			if !e.auth.users[otherAddr].Admin {
				t.Error("not admin")
			}
		}},
		{"user: unknown", "/admin/users", "/admin/users/nobody@example.test/quota", url.Values{"quota": {"1GiB"}}, 404, "no such user", nil},
		{"send-as: bad", bob, bob + "/sendas-add", url.Values{"address": {"not an address"}}, 400, "not a valid address", nil},
		{"send-as: add", bob, bob + "/sendas-add", url.Values{"address": {"sales@example.test"}}, 303, "sales@example.test", nil},
		{"send-as: remove unknown", bob, bob + "/sendas-remove", url.Values{"address": {"x@example.test"}}, 400, "no such send-as grant", nil},
		{"send-as: remove", bob, bob + "/sendas-remove", url.Values{"address": {"sales@example.test"}}, 303, "Send-as grants changed", nil},

		{"alias: no targets", "/admin/aliases", "/admin/aliases/add", url.Values{"address": {"sales@example.test"}, "targets": {" , "}}, 400, "1 to 100 target", nil},
		{"alias: bad target", "/admin/aliases", "/admin/aliases/add", url.Values{"address": {"sales@example.test"}, "targets": {"ann"}}, 400, "not a valid address", nil},
		{"alias: foreign", "/admin/aliases", "/admin/aliases/add", url.Values{"address": {"sales@elsewhere.test"}, "targets": {userAddr}}, 400, "not in one of our domains", nil},
		{"alias: add", "/admin/aliases", "/admin/aliases/add", url.Values{"address": {"sales@example.test"}, "targets": {userAddr + ", " + otherAddr}}, 303, "Added alias sales@example.test", func(t *testing.T, e *testEnv) {
			if got := e.auth.aliases["sales@example.test"]; len(got) != 2 {
				t.Errorf("targets %q", got)
			}
		}},
		{"alias: catch-all", "/admin/aliases", "/admin/aliases/add", url.Values{"address": {"@example.test"}, "targets": {userAddr}}, 303, "Added catch-all @example.test", nil},
		{"alias: remove unknown", "/admin/aliases", "/admin/aliases/remove", url.Values{"address": {"x@example.test"}}, 400, "no such alias", nil},
		{"alias: remove", "/admin/aliases", "/admin/aliases/remove", url.Values{"address": {"sales@example.test"}}, 303, "Removed sales@example.test", nil},

		{"vacation: no subject", bob, bob + "/vacation", url.Values{"message": {"Back soon"}}, 400, "subject", nil},
		{"vacation: bad date", bob, bob + "/vacation", url.Values{"subject": {"Away"}, "message": {"Back soon"}, "from": {"tomorrow"}}, 400, "YYYY-MM-DD", nil},
		{"vacation: backwards", bob, bob + "/vacation", url.Values{"subject": {"Away"}, "message": {"Back soon"}, "from": {"2026-12-10"}, "until": {"2026-12-01"}}, 400, "comes before", nil},
		{"vacation: days", bob, bob + "/vacation", url.Values{"subject": {"Away"}, "message": {"Back soon"}, "days": {"0"}}, 400, "1 to 365", nil},
		{"vacation: set", bob, bob + "/vacation", url.Values{"subject": {"Away"}, "message": {"Back soon"}, "from": {"2026-12-01"}, "until": {"2026-12-10"}, "days": {"3"}}, 303, "Out-of-office set", func(t *testing.T, e *testEnv) {
			v, err := e.sieve.Vacation(context.Background(), otherAddr)
			if err != nil || v.Subject != "Away" || v.Message != "Back soon\n" || v.Period.Hours() != 72 || v.End.Sub(v.Start).Hours() < 24*9 {
				t.Errorf("vacation %+v, %v", v, err)
			}
		}},
		{"vacation: off", bob, bob + "/vacation/off", nil, 303, "Out-of-office off", nil},

		{"sieve: bad name", bob + "/sieve", bob + "/sieve/save", url.Values{"name": {"a/b"}, "script": {"keep;"}}, 400, "script name", nil},
		{"sieve: bad script", bob + "/sieve", bob + "/sieve/save", url.Values{"name": {"main"}, "script": {"fileinto \"x\""}}, 400, "does not compile", nil},
		{"sieve: save", bob + "/sieve", bob + "/sieve/save", url.Values{"name": {"main"}, "script": {"require \"fileinto\";\r\nfileinto \"Archive\";\r\n"}, "activate": {"on"}}, 303, "Script main saved", func(t *testing.T, e *testEnv) {
			src, err := e.sieve.Get(context.Background(), otherAddr, "main")
			if err != nil || string(src) != "require \"fileinto\";\nfileinto \"Archive\";\n" || !strings.Contains(sieveState(t, e), otherAddr+"/main*") {
				t.Errorf("script %q %v, state %s", src, err, sieveState(t, e))
			}
		}},
		{"sieve: new with a taken name", bob + "/sieve", bob + "/sieve/save", url.Values{"name": {"main"}, "script": {"keep;"}, "new": {"1"}}, 400, "already has a script named main", nil},
		{"sieve: delete active", bob, bob + "/sieve/delete", url.Values{"name": {"main"}}, 400, "is active", nil},
		{"sieve: deactivate", bob, bob + "/sieve/activate", url.Values{"name": {""}}, 303, "No script is active", nil},
		{"sieve: delete", bob, bob + "/sieve/delete", url.Values{"name": {"main"}}, 303, "Script main deleted", nil},
	})
	// Every change above was logged with who and what.
	log := e.log.String()
	for _, want := range []string{"action=\"domain add\"", "action=\"user add\"", "action=\"alias add\"", "action=\"user password reset\"", "action=\"sieve put\"", "user=" + adminAddr} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	for _, secret := range []string{"long enough", "new password"} {
		if strings.Contains(log, secret) {
			t.Errorf("log holds a password: %q", secret)
		}
	}
	// Pages render with what was made.
	for path, want := range map[string]string{
		"/admin":                    `id="traffic-in">12</span> messages in`,
		"/admin/users?domain=nope":  "no such domain",
		"/admin/aliases":            "(catch-all)",
		"/admin/users/" + otherAddr: "Send as",
	} {
		if r := c.get(path); !strings.Contains(r.body, want) {
			t.Errorf("%s lacks %q: %s", path, want, excerpt(r.body))
		}
	}
}

func TestAccountForms(t *testing.T) {
	e := newTestServer(t)
	c := e.client(t)
	c.login(userAddr, userPass)
	var secret string
	runForms(t, e, c, []formCase{
		{"password: short", "/account", "/account/password", url.Values{"current": {userPass}, "new": {"short"}, "confirm": {"short"}}, 400, "at least 8", nil},
		{"password: mismatch", "/account", "/account/password", url.Values{"current": {userPass}, "new": {"new password 1"}, "confirm": {"new password 2"}}, 400, "differ", nil},
		{"password: wrong current", "/account", "/account/password", url.Values{"current": {"guess"}, "new": {"new password 1"}, "confirm": {"new password 1"}}, 400, "current password is not right", nil},
		{"password: change", "/account", "/account/password", url.Values{"current": {userPass}, "new": {"new password 1"}, "confirm": {"new password 1"}}, 303, "Your password is changed", func(t *testing.T, e *testEnv) {
			if e.auth.users[userAddr].password != "new password 1" {
				t.Error("not changed")
			}
		}},
		{"app password: no name", "/account", "/account/app-passwords", url.Values{"name": {""}}, 400, "name of 1 to 64", nil},
		{"app password: control", "/account", "/account/app-passwords", url.Values{"name": {"a\x01b"}}, 400, "printable", nil},
		{"app password: create", "/account", "/account/app-passwords", url.Values{"name": {"Phone"}}, 200, "shown this once", func(t *testing.T, e *testEnv) {
			apps := e.auth.users[userAddr].apps
			if len(apps) != 1 {
				t.Fatalf("%d app passwords", len(apps))
			}
			secret = apps[0].secret
		}},
		{"app password: second", "/account", "/account/app-passwords", url.Values{"name": {"Laptop"}}, 200, "shown this once", nil},
		{"app password: third", "/account", "/account/app-passwords", url.Values{"name": {"Tablet"}}, 200, "shown this once", nil},
		{"app password: too many", "/account", "/account/app-passwords", url.Values{"name": {"Watch"}}, 400, "as many app passwords as allowed", nil},
		{"app password: revoke bad id", "/account", "/account/app-passwords/revoke", url.Values{"id": {"x"}}, 400, "No such app password", nil},
		{"app password: revoke unknown", "/account", "/account/app-passwords/revoke", url.Values{"id": {"999"}}, 404, "No such app password", nil},
		{"2fa: bad code", "/account/2fa", "/account/2fa/enable", url.Values{"code": {"12345"}}, 400, "6-digit", nil},
		{"2fa: wrong code", "/account/2fa", "/account/2fa/enable", url.Values{"code": {"654321"}}, 400, "not right", nil},
		{"2fa: enable", "/account/2fa", "/account/2fa/enable", url.Values{"code": {"123 456"}}, 200, "rec-one-1111", func(t *testing.T, e *testEnv) {
			if u := e.auth.users[userAddr]; !u.TOTP || u.secret != "JBSWY3DPEHPK3PXP" {
				t.Errorf("totp %v secret %q", u.TOTP, u.secret)
			}
		}},
		{"2fa: disable wrong password", "/account/2fa", "/account/2fa/disable", url.Values{"password": {userPass}}, 400, "stays on", nil},
		{"2fa: disable", "/account/2fa", "/account/2fa/disable", url.Values{"password": {"new password 1"}}, 303, "Two-factor login is off", nil},
		{"vacation: empty message", "/account/vacation", "/account/vacation", url.Values{"subject": {"Away"}, "message": {"  "}}, 400, "Write the message", nil},
		{"vacation: subject with newline", "/account/vacation", "/account/vacation", url.Values{"subject": {"Away\r\nBcc: x@y"}, "message": {"m"}}, 400, "one line", nil},
		{"vacation: on", "/account/vacation", "/account/vacation", url.Values{"subject": {"Away"}, "message": {"Back on Monday"}}, 303, "out-of-office is on", nil},
		{"vacation: off", "/account/vacation", "/account/vacation/off", nil, 303, "out-of-office is off", nil},
	})
	// The app password is shown once: not on the next page, not in the log.
	if secret == "" {
		t.Fatal("no app password made")
	}
	r := c.get("/account")
	if strings.Contains(r.body, secret) || !strings.Contains(r.body, "Phone") {
		t.Errorf("account page: secret shown again, or the device not listed")
	}
	id := itoa(e.auth.users[userAddr].apps[0].ID)
	if r := c.post("/account/app-passwords/revoke", url.Values{"id": {id}}); r.status != http.StatusSeeOther || len(e.auth.users[userAddr].apps) != 2 {
		t.Errorf("revoke: %d", r.status)
	}
	log := e.log.String()
	for _, s := range []string{secret, "new password 1", userPass, "JBSWY3DPEHPK3PXP", "rec-one-1111"} {
		if strings.Contains(log, s) {
			t.Errorf("log holds a secret: %q", s)
		}
	}
	// The enrolment page shows the URI, the secret and a QR code.
	r = c.get("/account/2fa")
	if !strings.Contains(r.body, "otpauth://totp/") || !strings.Contains(r.body, "JBSWY3DPEHPK3PXP") || !strings.Contains(r.body, `src="data:image/png;base64,`) {
		t.Errorf("2fa page: %s", excerpt(r.body))
	}
}

func TestQueuePages(t *testing.T) {
	e := newTestServer(t)
	ctx := context.Background()
	id, err := e.queue.Enqueue(ctx, userAddr, []string{"someone@remote.test"}, strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := e.client(t)
	c.login(adminAddr, adminPass)
	if r := c.get("/admin/queue"); !strings.Contains(r.body, id) {
		t.Fatalf("queue list lacks %s", id)
	}
	if r := c.get("/admin"); !strings.Contains(r.body, "1</span> queued") {
		t.Errorf("dashboard: %s", excerpt(r.body))
	}
	if r := c.get("/admin/queue/" + id); !strings.Contains(r.body, "someone@remote.test") || !strings.Contains(r.body, "pending") {
		t.Errorf("show: %s", excerpt(r.body))
	}
	for _, bad := range []string{"/admin/queue/xyz", "/admin/queue/0123456789abcdef"} {
		if r := c.get(bad); r.status != http.StatusNotFound {
			t.Errorf("%s: %d", bad, r.status)
		}
	}
	c.get("/admin/queue/" + id)
	if r := c.follow(c.post("/admin/queue/"+id+"/retry", nil)); !strings.Contains(r.body, "1 recipient(s) due now") {
		t.Errorf("retry: %s", excerpt(r.body))
	}
	if r := c.follow(c.post("/admin/queue/retry-all", nil)); !strings.Contains(r.body, "due now") {
		t.Errorf("retry all: %s", excerpt(r.body))
	}
	if r := c.follow(c.post("/admin/queue/"+id+"/remove", nil)); !strings.Contains(r.body, "Removed "+id) {
		t.Errorf("remove: %s", excerpt(r.body))
	}
	if _, err := e.queue.Get(ctx, id); err != queue.ErrNotFound {
		t.Errorf("still queued: %v", err)
	}
	if r := c.post("/admin/queue/"+id+"/remove", nil); r.status != http.StatusNotFound {
		t.Errorf("remove again: %d", r.status)
	}
}

func TestDKIMAndDNSPages(t *testing.T) {
	e := newTestServer(t)
	c := e.client(t)
	c.login(adminAddr, adminPass)
	runForms(t, e, c, []formCase{
		{"dkim: bad algorithm", "/admin/dkim", "/admin/dkim/generate", url.Values{"domain": {"example.test"}, "algorithm": {"dsa"}}, 400, "rsa or ed25519", nil},
		{"dkim: foreign domain", "/admin/dkim", "/admin/dkim/generate", url.Values{"domain": {"other.test"}, "algorithm": {"ed25519"}}, 400, "not one of our domains", nil},
		{"dkim: bad selector", "/admin/dkim", "/admin/dkim/generate", url.Values{"domain": {"example.test"}, "selector": {"a.b"}, "algorithm": {"ed25519"}}, 400, "selector is", nil},
		{"dkim: generate", "/admin/dkim", "/admin/dkim/generate", url.Values{"domain": {"example.test"}, "selector": {"ed1"}, "algorithm": {"ed25519"}}, 200, "ed1._domainkey.example.test. 3600 IN TXT", nil},
		{"dkim: exists", "/admin/dkim", "/admin/dkim/generate", url.Values{"domain": {"example.test"}, "selector": {"ed1"}, "algorithm": {"ed25519"}}, 400, "already has a key", nil},
		{"dkim: remove unknown", "/admin/dkim", "/admin/dkim/remove", url.Values{"domain": {"example.test"}, "selector": {"nope"}}, 404, "no such key", nil},
	})
	keys, err := e.queue.DKIM().List(context.Background(), "example.test")
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v %v", keys, err)
	}
	// Publish the MX and the key; leave the rest out.
	e.dns.Add("example.test. MX 10 mail.example.test.", "mail.example.test. A 127.0.0.10")
	e.dns.AddTXT(keys[0].TXTName()+".", keys[0].TXTValue())
	r := c.get("/admin/dns?domain=example.test")
	if r.status != http.StatusOK {
		t.Fatalf("dns page: %d", r.status)
	}
	for _, want := range []string{
		`<tr class="st-ok"><td><span class="badge">ok</span></td><td>MX</td>`,
		`<tr class="st-ok"><td><span class="badge">ok</span></td><td>DKIM</td>`,
		`<tr class="st-missing"><td><span class="badge">missing</span></td><td>DMARC</td>`,
		`_dmarc.example.test. 3600 IN TXT &#34;v=DMARC1; p=quarantine; adkim=r; aspf=r&#34;`,
		`example.test. 3600 IN TXT &#34;v=spf1 mx -all&#34;`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("dns page lacks %s", want)
		}
	}
	if r := c.get("/admin/dns?domain=elsewhere.test"); r.status != http.StatusNotFound {
		t.Errorf("foreign domain: %d", r.status)
	}
	c.get("/admin/dkim")
	if r := c.follow(c.post("/admin/dkim/remove", url.Values{"domain": {"example.test"}, "selector": {"ed1"}})); !strings.Contains(r.body, "Removed key ed1") {
		t.Errorf("dkim remove: %s", excerpt(r.body))
	}
}

// TestFormLimits: an oversized form is refused whole.
func TestFormLimits(t *testing.T) {
	e := newTestServer(t)
	c := e.client(t)
	c.login(adminAddr, adminPass)
	c.get("/admin/domains")
	r := c.post("/admin/domains/add", url.Values{"name": {"big.test"}, "pad": {strings.Repeat("x", maxFormBytes)}})
	if r.status != http.StatusRequestEntityTooLarge || e.auth.changes() != 0 {
		t.Errorf("oversized form: %d, %d changes", r.status, e.auth.changes())
	}
}
