package autoconfig

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type domains map[string]bool

func (d domains) IsLocalDomain(_ context.Context, domain string) (bool, error) { return d[domain], nil }

func newHandler() *Handler {
	return New(Options{
		Hostname:    "mail.example.com",
		Domains:     domains{"example.com": true},
		IMAPS:       Service{Port: 993},
		IMAP:        Service{Port: 143, STARTTLS: true},
		POP3S:       Service{Port: 995},
		POP3:        Service{Port: 110, STARTTLS: true},
		Submissions: Service{Port: 465},
		Submission:  Service{Port: 587, STARTTLS: true},
	})
}

func do(t *testing.T, h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// Thunderbird's parser needs, per server: type, hostname, port, socketType,
// authentication and username; the provider needs an id and a domain.
func TestThunderbirdAutoconfig(t *testing.T) {
	h := newHandler()
	for _, target := range []string{
		"/mail/config-v1.1.xml?emailaddress=Alice%40Example.com",
		"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.com",
	} {
		rec := do(t, h, "GET", target, "")
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
		}
		var cfg clientConfig
		if err := xml.Unmarshal(rec.Body.Bytes(), &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Version != "1.1" || cfg.Provider.ID != "example.com" || cfg.Provider.Domain != "example.com" {
			t.Fatalf("provider: %+v", cfg.Provider)
		}
		type want struct {
			typ, socket string
			port        int
		}
		var got []want
		for _, s := range append(cfg.Provider.Incoming, cfg.Provider.Outgoing...) {
			if s.Hostname != "mail.example.com" || s.Username != "%EMAILADDRESS%" || s.Authentication != "password-cleartext" {
				t.Fatalf("server: %+v", s)
			}
			got = append(got, want{s.Type, s.SocketType, s.Port})
		}
		exp := []want{{"imap", "SSL", 993}, {"imap", "STARTTLS", 143}, {"pop3", "SSL", 995}, {"pop3", "STARTTLS", 110}, {"smtp", "SSL", 465}, {"smtp", "STARTTLS", 587}}
		if len(got) != len(exp) {
			t.Fatalf("servers %v", got)
		}
		for i := range exp {
			if got[i] != exp[i] {
				t.Fatalf("server %d: got %v want %v", i, got[i], exp[i])
			}
		}
	}
}

func TestThunderbirdAutoconfigByHost(t *testing.T) {
	req := httptest.NewRequest("GET", "/mail/config-v1.1.xml", nil)
	req.Host = "autoconfig.example.com:443"
	rec := httptest.NewRecorder()
	newHandler().ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "<domain>example.com</domain>") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

func TestAutoconfigRefusals(t *testing.T) {
	h := newHandler()
	for _, tc := range []struct {
		name, method, target string
		code                 int
	}{
		{"foreign domain", "GET", "/mail/config-v1.1.xml?emailaddress=bob%40other.org", 404},
		{"no at", "GET", "/mail/config-v1.1.xml?emailaddress=bob", 400},
		{"empty local", "GET", "/mail/config-v1.1.xml?emailaddress=%40example.com", 400},
		{"header injection", "GET", "/mail/config-v1.1.xml?emailaddress=a%0d%0a%40example.com", 400},
		{"post", "POST", "/mail/config-v1.1.xml?emailaddress=a%40example.com", 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rec := do(t, h, tc.method, tc.target, ""); rec.Code != tc.code {
				t.Fatalf("got %d want %d: %s", rec.Code, tc.code, rec.Body)
			}
		})
	}
}

const outlookRequest = `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>alice@example.com</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`

// The outlook 2006a response needs Autodiscover/Response/Account with
// AccountType email, Action settings, and a Protocol per service with Type,
// Server, Port, LoginName, SSL and AuthRequired.
func TestOutlookAutodiscover(t *testing.T) {
	for _, path := range []string{"/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"} {
		rec := do(t, newHandler(), "POST", path, outlookRequest)
		if rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		body := rec.Body.String()
		for _, ns := range []string{nsAutodiscover, nsOutlook} {
			if !strings.Contains(body, `xmlns="`+ns+`"`) {
				t.Fatalf("missing namespace %s:\n%s", ns, body)
			}
		}
		var resp struct {
			Response struct {
				User struct {
					EMailAddress string
				}
				Account struct {
					AccountType, Action string
					Protocol            []outlookProtocol
				}
			}
		}
		if err := xml.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		a := resp.Response.Account
		if resp.Response.User.EMailAddress != "alice@example.com" || a.AccountType != "email" || a.Action != "settings" {
			t.Fatalf("account: %+v", resp.Response)
		}
		want := map[string]int{"IMAP": 993, "POP3": 995, "SMTP": 465}
		if len(a.Protocol) != len(want) {
			t.Fatalf("protocols: %+v", a.Protocol)
		}
		for _, p := range a.Protocol {
			if want[p.Type] != p.Port || p.Server != "mail.example.com" || p.LoginName != "alice@example.com" || p.SSL != "on" || p.AuthRequired != "on" {
				t.Fatalf("protocol: %+v", p)
			}
			// Implicit-TLS ports must not say Encryption TLS: Outlook would
			// try STARTTLS on 993.
			if p.Encryption != "" {
				t.Fatalf("Encryption on implicit TLS port: %+v", p)
			}
		}
	}
}

func TestOutlookAutodiscoverStartTLSOnly(t *testing.T) {
	h := New(Options{Hostname: "mail.example.com", IMAP: Service{143, true}, Submission: Service{587, true}})
	rec := do(t, h, "POST", "/autodiscover/autodiscover.xml", outlookRequest)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	if strings.Count(body, "<Encryption>TLS</Encryption>") != 2 || strings.Contains(body, "POP3") {
		t.Fatalf("unexpected:\n%s", body)
	}
}

func TestMobileSyncFallsBack(t *testing.T) {
	req := strings.Replace(outlookRequest, nsOutlook, nsMobileSync, 1)
	req = strings.Replace(req, "outlook/requestschema", "mobilesync/requestschema", 1)
	rec := do(t, newHandler(), "POST", "/autodiscover/autodiscover.xml", req)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var resp struct {
		Response struct {
			Action struct {
				Error struct {
					ErrorCode int
				}
			}
		}
	}
	if err := xml.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Response.Action.Error.ErrorCode != 600 || !strings.Contains(rec.Body.String(), nsMobileSync) {
		t.Fatalf("mobilesync answer:\n%s", rec.Body)
	}
}

func TestAutodiscoverJSON(t *testing.T) {
	h := newHandler()
	rec := do(t, h, "GET", "/autodiscover/autodiscover.json?Email=alice%40example.com&Protocol=AutodiscoverV1", "")
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var v map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v["Protocol"] != "AutodiscoverV1" || v["Url"] != "https://mail.example.com/autodiscover/autodiscover.xml" {
		t.Fatalf("%v", v)
	}
	// The forms Outlook builds send: the address in the path (new Outlook,
	// Outlook for iOS/Android) or in the query, keys and values in any case.
	for _, target := range []string{
		"/autodiscover/autodiscover.json/v1.0/alice@example.com?Protocol=AutodiscoverV1",
		"/Autodiscover/Autodiscover.json/v1.0/Alice%40Example.com?protocol=autodiscoverv1",
		"/autodiscover/autodiscover.json?email=alice%40example.com&protocol=AutoDiscoverV1",
		"/AUTODISCOVER/AUTODISCOVER.JSON/v1.0/alice@example.com?Protocol=AutodiscoverV1&RedirectCount=1",
	} {
		rec := do(t, h, "GET", target, "")
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"Url":"https://mail.example.com/autodiscover/autodiscover.xml"`) {
			t.Errorf("%s: %d %s", target, rec.Code, rec.Body)
		}
	}
	// Protocols we do not offer get Microsoft's "not supported" answer,
	// which sends Outlook on to IMAP.
	for _, p := range []string{"ActiveSync", "Ews", "Rest", "", "AutodiscoverV2"} {
		rec := do(t, h, "GET", "/autodiscover/autodiscover.json/v1.0/alice@example.com?Protocol="+p, "")
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"ErrorCode":"ProtocolNotSupported"`) {
			t.Errorf("protocol %q: %d %s", p, rec.Code, rec.Body)
		}
	}
	for _, tc := range []struct {
		target string
		code   int
	}{
		{"/autodiscover/autodiscover.json/v1.0/bob@elsewhere.org?Protocol=AutodiscoverV1", 404},
		{"/autodiscover/autodiscover.json/v1.0/not-an-address?Protocol=AutodiscoverV1", 400},
		{"/autodiscover/autodiscover.json/v1.0/?Protocol=AutodiscoverV1", 404},
		{"/autodiscover/autodiscover.json/v1.0/a@example.com/x?Protocol=AutodiscoverV1", 404},
		{"/autodiscover/autodiscover.jsonx?Email=alice%40example.com&Protocol=AutodiscoverV1", 404},
	} {
		if rec := do(t, h, "GET", tc.target, ""); rec.Code != tc.code {
			t.Errorf("%s: %d, want %d", tc.target, rec.Code, tc.code)
		}
	}
	// With the https listener on another port, the URL names it.
	h2 := New(Options{Hostname: "mail.example.com", Domains: domains{"example.com": true}, HTTPS: 8443})
	rec = do(t, h2, "GET", "/autodiscover/autodiscover.json/v1.0/alice@example.com?Protocol=AutodiscoverV1", "")
	if !strings.Contains(rec.Body.String(), `"Url":"https://mail.example.com:8443/autodiscover/autodiscover.xml"`) {
		t.Errorf("port 8443: %s", rec.Body)
	}
}

// Outlook's HTTP redirect method: a GET of the plain-HTTP POX URL is sent
// on to our HTTPS endpoint when there is one; otherwise, and over HTTPS,
// GET stays "use POST".
func TestAutodiscoverHTTPRedirect(t *testing.T) {
	h := New(Options{Hostname: "mail.example.com", Domains: domains{"example.com": true}, HTTPS: 443})
	rec := do(t, h, "GET", "http://autodiscover.example.com/autodiscover/autodiscover.xml", "")
	if rec.Code != 302 || rec.Header().Get("Location") != "https://mail.example.com/autodiscover/autodiscover.xml" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	if rec := do(t, newHandler(), "GET", "/autodiscover/autodiscover.xml", ""); rec.Code != 405 {
		t.Fatalf("without https: %d", rec.Code)
	}
	req := httptest.NewRequest("GET", "https://mail.example.com/autodiscover/autodiscover.xml", nil)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 405 {
		t.Fatalf("over https: %d", rec.Code)
	}
}

func TestHostileAutodiscoverBodies(t *testing.T) {
	laughs := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>` +
		`<Autodiscover><Request><EMailAddress>&lol3;@example.com</EMailAddress></Request></Autodiscover>`
	xxe := `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>` +
		`<Autodiscover><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>`
	for _, tc := range []struct{ name, body string }{
		{"empty", ""},
		{"malformed", "<Autodiscover><Request>"},
		{"not xml", "\x00\x01\x02garbage"},
		{"no address", "<Autodiscover><Request></Request></Autodiscover>"},
		{"billion laughs", laughs},
		{"external entity", xxe},
		{"huge", "<Autodiscover><Request><EMailAddress>" + strings.Repeat("a", 1<<20) + "</EMailAddress></Request></Autodiscover>"},
		{"deep nesting", strings.Repeat("<a>", 100000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(t, newHandler(), "POST", "/autodiscover/autodiscover.xml", tc.body)
			if rec.Code != 400 {
				t.Fatalf("got %d: %.200s", rec.Code, rec.Body)
			}
			if strings.Contains(rec.Body.String(), "root:") {
				t.Fatal("external entity was read")
			}
		})
	}
}

func FuzzParseAutodiscoverRequest(f *testing.F) {
	f.Add([]byte(outlookRequest))
	f.Add([]byte("<Autodiscover><Request><EMailAddress>a@b</EMailAddress></Request></Autodiscover>"))
	f.Add([]byte(`<!DOCTYPE a [<!ENTITY b "c">]><Autodiscover/>`))
	h := newHandler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseAutodiscoverRequest(strings.NewReader(string(body)))
		if err == nil && req.Request.EMailAddress == "" {
			t.Fatal("accepted a request without address")
		}
		rec := do(t, h, "POST", "/autodiscover/autodiscover.xml", string(body))
		if rec.Code != 200 && rec.Code != 400 && rec.Code != 404 {
			t.Fatalf("status %d", rec.Code)
		}
	})
}
