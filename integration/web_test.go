package integration

// The web console in a real browser: headless Chromium (Debian's
// chromium) driven through the DevTools protocol by chromedp. The admin
// logs in, adds a domain, a user and an alias; the user logs in, turns on
// two-factor login with a TOTP code computed here (RFC 6238, written
// independently of the server's), makes an app password, and go-imap's
// client and go-smtp's client log in with it; once revoked in the browser
// it fails on both. Each page is saved as a PNG for a person to look at:
// $POSTHOUSE_SCREENSHOTS, or posthouse-screenshots under the system temp
// directory (never in the tree).

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base32"
	bin "encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// chromium returns the browser's path. It skips the test when chromium is
// absent, except in CI (CI=true), where .ci/run installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed, but CI must run the browser test (.ci/run installs it)")
	}
	t.Skip("chromium is not installed (apt-get install chromium); skipping the browser test")
	return ""
}

// totp computes an RFC 6238 code: HMAC-SHA-1 over the 30-second step,
// dynamic truncation (RFC 4226 §5.3), 6 digits.
func totp(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.TrimRight(secret, "=")))
	if err != nil {
		t.Fatalf("TOTP secret %q: %v", secret, err)
	}
	var msg [8]byte
	bin.BigEndian.PutUint64(msg[:], uint64(at.Unix()/30))
	mac := hmac.New(sha1.New, key)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	n := bin.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", n%1_000_000)
}

// browser is one headless Chromium tab on the console.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
	shot int
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path := chromium(t)
	dir := os.Getenv("POSTHOUSE_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "posthouse-screenshots")
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.WindowSize(1100, 900),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	t.Logf("screenshots in %s", dir)
	return &browser{t: t, ctx: ctx, base: base, dir: dir}
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

// open loads a page and waits for its heading.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS("h1")))
}

// text returns the text of the first element sel matches.
func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("browser: read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// submit fills a form's fields (name → value; "on" ticks a checkbox),
// presses its button, waits for the next page and checks that it says
// want.
func (b *browser) submit(action string, fields map[string]string, want string) {
	b.t.Helper()
	form := fmt.Sprintf(`form[action=%q]`, action)
	var steps []chromedp.Action[chromedp.Void]
	for name, value := range fields {
		sel := chromedp.CSS(fmt.Sprintf(`%s [name=%q]`, form, name))
		if value == "on" {
			steps = append(steps, chromedp.Click(sel))
			continue
		}
		steps = append(steps, chromedp.SetValue(sel, value))
	}
	b.do("fill "+action, steps...)
	b.press(form + " button")
	b.expect(want)
}

// press clicks a button and waits until the page it leads to loads.
func (b *browser) press(sel string) {
	b.t.Helper()
	if _, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		b.t.Fatalf("browser: press %s: %v", sel, err)
	}
}

// expect checks that the page's text holds want.
func (b *browser) expect(want string) {
	b.t.Helper()
	body, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		b.t.Fatalf("browser: read the page: %v", err)
	}
	if !strings.Contains(body, want) {
		b.t.Fatalf("browser: the page does not say %q; it says:\n%s", want, body)
	}
}

// screenshot saves the whole page.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("browser: screenshot: %v", err)
	}
	b.shot++
	if err := os.WriteFile(filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.shot, name)), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) login(address, password string) {
	b.t.Helper()
	b.open("/login")
	b.submit("/login", map[string]string{"address": address, "password": password}, "")
}

func (b *browser) logout() {
	b.t.Helper()
	b.press(`form[action="/logout"] button`)
	b.expect("Log in")
}

func TestWebConsoleBrowser(t *testing.T) {
	chromium(t)
	s := startServer(t, "[auth]\nrequire_app_passwords = true\n")
	const (
		adminAddr = "boss@example.test"
		adminPass = "boss password 1"
		userAddr  = "ann@shop.test"
		userPass  = "ann password 22"
	)
	s.Admin(t, "", "domain", "add", "example.test")
	s.Admin(t, adminPass+"\n", "user", "add", "--admin", "--password-stdin", adminAddr)

	b := newBrowser(t, "http://"+s.Addr("admin"))
	b.open("/login")
	b.screenshot("login")
	b.login(adminAddr, adminPass)
	b.expect("Disk use per account")
	b.screenshot("dashboard")

	b.open("/admin/domains")
	b.submit("/admin/domains/add", map[string]string{"name": "shop.test"}, "Added domain shop.test")
	b.screenshot("domains")
	b.open("/admin/users")
	b.submit("/admin/users/add", map[string]string{"address": userAddr, "password": userPass, "quota": "1GiB"}, "Added user "+userAddr)
	b.screenshot("user")
	b.open("/admin/aliases")
	b.submit("/admin/aliases/add", map[string]string{"address": "sales@shop.test", "targets": userAddr}, "Added alias sales@shop.test")
	b.screenshot("aliases")
	b.open("/admin/dns?domain=shop.test")
	b.expect("To publish")
	b.screenshot("dns-check")
	b.open("/admin/queue")
	b.screenshot("queue")
	b.open("/admin/dkim")
	b.screenshot("dkim")
	b.logout()

	// The user: two-factor login on.
	b.login(userAddr, userPass)
	b.expect("App passwords")
	b.screenshot("account")
	b.open("/account/2fa")
	secret := b.text("#totp-secret")
	if uri := b.text("#totp-uri"); !strings.HasPrefix(uri, "otpauth://totp/") || !strings.Contains(uri, "secret="+secret) {
		t.Errorf("otpauth URI %q", uri)
	}
	b.screenshot("2fa-setup")
	enabledAt := time.Now()
	b.submit("/account/2fa/enable", map[string]string{"code": totp(t, secret, enabledAt)}, "Recovery codes")
	codes := b.text("#recovery-codes")
	if len(strings.Fields(codes)) < 5 {
		t.Errorf("recovery codes: %q", codes)
	}
	b.screenshot("2fa-on")

	// Web login now asks for a code; the one just used is refused, the
	// next step's is taken.
	b.logout()
	b.login(userAddr, userPass)
	b.expect("authenticator app")
	b.screenshot("login-code")
	b.submit("/login/code", map[string]string{"code": totp(t, secret, enabledAt)}, "Wrong code")
	next := time.Now()
	if next.Unix()/30 <= enabledAt.Unix()/30 {
		next = enabledAt.Add(30 * time.Second) // a step not used yet, within the ±1 step allowed
	}
	b.submit("/login/code", map[string]string{"code": totp(t, secret, next)}, "App passwords")

	// With 2FA on and require_app_passwords, the account password no
	// longer logs in to IMAP.
	if err := imapLogin(t, s, userAddr, userPass); err == nil {
		t.Error("IMAP login with the account password succeeded with 2FA on and require_app_passwords")
	}

	b.submit("/account/app-passwords", map[string]string{"name": "Phone"}, "shown this once")
	appPass := b.text("#new-app-password")
	b.screenshot("app-password")
	if appPass == "" || strings.Contains(appPass, " ") {
		t.Fatalf("app password %q", appPass)
	}

	if err := imapLogin(t, s, userAddr, appPass); err != nil {
		t.Fatalf("IMAP login with the app password: %v", err)
	}
	if err := smtpSend(t, s, userAddr, appPass, "sales@shop.test"); err != nil {
		t.Fatalf("SMTP AUTH with the app password: %v", err)
	}
	// The alias delivered to ann: her INBOX has the message.
	waitInbox(t, s, userAddr, appPass, 1)

	// The account page shows when and where the app password was used.
	b.open("/account")
	b.expect("127.0.0.1")
	b.screenshot("app-password-used")
	b.press(`form[action="/account/app-passwords/revoke"] button`)
	b.expect("is revoked")
	b.screenshot("revoked")

	if err := imapLogin(t, s, userAddr, appPass); err == nil {
		t.Error("IMAP login with the revoked app password succeeded")
	}
	if err := smtpSend(t, s, userAddr, appPass, "sales@shop.test"); err == nil {
		t.Error("SMTP AUTH with the revoked app password succeeded")
	}

	b.open("/account/vacation")
	b.submit("/account/vacation", map[string]string{"subject": "Away", "message": "Back on Monday."}, "out-of-office is on")
	b.screenshot("vacation")

	// On a phone's screen the pages fit its width (tables scroll inside).
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulatePortrait))
	for _, p := range []string{"/account", "/account/2fa", "/account/vacation"} {
		b.open(p)
		fits, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`))
		if err != nil || !fits {
			t.Errorf("%s is wider than a phone's screen (%v)", p, err)
		}
		b.screenshot("phone" + strings.ReplaceAll(p, "/", "-"))
	}

	// The admin's dashboard counts the message ann sent, and her mail.
	b.do("desktop viewport", chromedp.EmulateViewport(1100, 900))
	b.open("/account")
	b.logout()
	b.login(adminAddr, adminPass)
	b.expect("Disk use per account")
	if out := b.text("#traffic-out"); out != "1" {
		t.Errorf("dashboard: %s messages out, want 1", out)
	}
	b.screenshot("dashboard-after")

	// Every admin change is in the log with who made it.
	log := s.Log()
	for _, want := range []string{`action="domain add"`, `action="user add"`, `action="alias add"`} {
		if !regexp.MustCompile(`admin action.*user=` + regexp.QuoteMeta(adminAddr) + `.*` + regexp.QuoteMeta(want)).MatchString(log) {
			t.Errorf("log lacks %s by %s", want, adminAddr)
		}
	}
	for _, secretText := range []string{userPass, appPass, secret} {
		if strings.Contains(log, secretText) {
			t.Errorf("the log holds a secret %q", secretText)
		}
	}
}

func imapLogin(t *testing.T, s *Server, user, pass string) error {
	t.Helper()
	c, err := imapclient.DialStartTLS(s.Addr("imap"), &imapclient.Options{TLSConfig: s.imapTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.Login(user, pass).Wait()
}

func smtpSend(t *testing.T, s *Server, user, pass, to string) error {
	t.Helper()
	c, err := smtp.DialStartTLS(s.Addr("submission"), s.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		return err
	}
	msg := "From: " + user + "\r\nTo: " + to + "\r\nSubject: from the phone\r\nMessage-ID: <web-test@shop.test>\r\n\r\nsent with an app password\r\n"
	return c.SendMail(user, []string{to}, strings.NewReader(msg))
}

func waitInbox(t *testing.T, s *Server, user, pass string, n uint32) {
	t.Helper()
	c, err := imapclient.DialStartTLS(s.Addr("imap"), &imapclient.Options{TLSConfig: s.imapTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if st.NumMessages != nil && *st.NumMessages >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("INBOX of %s has %v messages, want %d", user, st.NumMessages, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWebAccountOnHTTPS: with [listen] https set, self-service is there too
// (Secure cookies), while the admin pages and /metrics are not; the admin
// listener keeps them.
func TestWebAccountOnHTTPS(t *testing.T) {
	s := startServer(t, "[listen]\nhttps = \"127.0.0.1:0\"\n")
	const addr, pass = "carol@example.test", "carol password"
	s.AddUser(t, addr, pass)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CACertPool(), ServerName: TestHostname}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "https://" + s.Addr("https")
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, _ := get("/account"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("/account before login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page := get("/login")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("login page without a CSRF token: %s", page)
	}
	resp, err := c.PostForm(base+"/login", url.Values{"address": {addr}, "password": {pass}, "csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var secure bool
	for _, ck := range resp.Cookies() {
		if ck.Name == "posthouse_session" {
			secure = ck.Secure && ck.HttpOnly && ck.SameSite == http.SameSiteStrictMode
		}
	}
	if resp.StatusCode != http.StatusSeeOther || !secure {
		t.Fatalf("login over https: %d, secure session cookie %v", resp.StatusCode, secure)
	}
	if resp, body := get("/account"); resp.StatusCode != http.StatusOK || !strings.Contains(body, addr) {
		t.Errorf("/account after login: %d", resp.StatusCode)
	}
	for _, p := range []string{"/admin", "/admin/users", "/metrics"} {
		if resp, _ := get(p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("https %s: %d, want 404", p, resp.StatusCode)
		}
	}
	// Autoconfig still answers on https.
	if resp, _ := get("/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=" + addr); resp.StatusCode != http.StatusOK {
		t.Errorf("autoconfig on https: %d", resp.StatusCode)
	}
	// The admin listener serves the metrics.
	mresp, err := http.Get("http://" + s.Addr("admin") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mbody, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if mresp.StatusCode != http.StatusOK || !strings.Contains(string(mbody), "# TYPE") {
		t.Errorf("admin /metrics: %d", mresp.StatusCode)
	}
}
