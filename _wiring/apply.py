# Wires the web console into serve once package auth has roles, app
# passwords and TOTP (and package metrics its Recorder) on this branch:
#   git merge main && python3 _wiring/apply.py . && go mod tidy
# It moves serve_web.go and web_auth.go into cmd/posthouse, makes the small
# edits below (app.web, the admin listener, /account on https, the tests'
# admin listener) and removes this directory.
import os
import shutil
import sys
root=sys.argv[1]
def edit(path, pairs):
    p=root+'/'+path
    s=open(p).read()
    for old,new in pairs:
        if old not in s:
            raise SystemExit(f"{path}: not found: {old[:60]!r}")
        s=s.replace(old,new,1)
    open(p,'w').write(s)
edit('cmd/posthouse/serve.go', [
('''	// sieve holds users' Sieve scripts (data_dir/sieve.sqlite).
	sieve *sievestore.Store
''','''	// sieve holds users' Sieve scripts (data_dir/sieve.sqlite).
	sieve *sievestore.Store
	// web is the web console, served on [listen] admin (and /account on
	// https); nil when both are off.
	web *web.Server
'''),
('''	}

	// Queue workers, then the listeners''','''	}
	if cfg.Listen.Admin != "" || cfg.Listen.HTTPS != "" {
		webSrv, webDB, err := newWeb(runCtx, a)
		if err != nil {
			return fmt.Errorf("web console: %w", err)
		}
		defer closeLogged(log, "web session database", webDB)
		a.web = webSrv
	}

	// Queue workers, then the listeners'''),
('''		{"http", startHTTP},
''','''		{"http", startHTTP},
		{"admin", startWeb},
'''),
('''	"github.com/posthouse/posthouse/srs"
''','''	"github.com/posthouse/posthouse/srs"
	"github.com/posthouse/posthouse/web"
'''),
("listeners (smtp, imap, pop3, managesieve, http).","listeners (smtp, imap, pop3, managesieve, http, admin)."),
])
edit('cmd/posthouse/serve_http.go', [
('''		case name == "https":
			srv.tls = a.tls.Clone()''','''		case name == "https":
			srv.Handler = withAccount(a, handler)
			srv.tls = a.tls.Clone()'''),
('''// http, TLS-ALPN-01 on https).''','''// http, TLS-ALPN-01 on https); https also serves self-service (/account).'''),
])
edit('cmd/posthouse/serve_test.go', [
('''	c.DataDir = filepath.Join(t.TempDir(), "data")
	return c''','''	c.DataDir = filepath.Join(t.TempDir(), "data")
	c.Listen.Admin = "127.0.0.1:0" // never the default port: tests run in parallel
	return c'''),
('''&c.Listen.ManageSieve, &c.Listen.HTTP, &c.Listen.HTTPS} {''','''&c.Listen.ManageSieve, &c.Listen.HTTP, &c.Listen.HTTPS, &c.Listen.Admin} {'''),
('''		"listening http", "listening https", "started",
		"stopped http",''','''		"listening http", "listening https", "listening admin", "started",
		"stopped admin", "stopped http",'''),
])
edit('integration/harness_test.go', [
('''"imap", "imaps", "managesieve"}''','''"imap", "imaps", "managesieve", "admin"}'''),
('''	if name == "http" || name == "https" {''','''	if name == "http" || name == "https" || name == "admin" {'''),
])
edit('cmd/posthouse/doc.go', [
('''// (smtp, imap, pop3, http; each protocol's options are built in its own
// serve_<name>.go).''','''// (smtp, imap, pop3, managesieve, http, admin; each protocol's options are
// built in its own serve_<name>.go, the web console's in serve_web.go).'''),
])
edit('integration/web_test.go', [
('''	webWired(t)
	chromium(t)
''', '''	chromium(t)
'''),
('''func TestWebAccountOnHTTPS(t *testing.T) {
	webWired(t)
''', '''func TestWebAccountOnHTTPS(t *testing.T) {
'''),
('''// webWired skips while serve does not start the web console: the harness
// enables the admin listener from the commit that wires it (it needs
// auth's roles, app passwords and TOTP).
func webWired(t *testing.T) {
	t.Helper()
	if !slices.Contains(listenerNames, "admin") {
		t.Skip("the web console is not served yet: serve wires it once auth's roles, app passwords and TOTP are in")
	}
}

''', ''),
('''	"regexp"
	"slices"
''', '''	"regexp"
'''),
])

here = os.path.join(root, '_wiring')
for f in ('serve_web.go', 'web_auth.go'):
    shutil.copy(os.path.join(here, f), os.path.join(root, 'cmd/posthouse', f))
shutil.rmtree(here)
