package integration

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"

	"github.com/posthouse/posthouse/dns/dnstest"
)

func listenPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// TestAutoconfigOverHTTP asks the running server what Thunderbird and
// Outlook ask, and checks the answers name the listeners it really has.
func TestAutoconfigOverHTTP(t *testing.T) {
	s := startServer(t, `[listen]
http = "127.0.0.1:0"`)
	s.AddUser(t, "alice@example.test", "correct horse")
	base := "http://" + s.Addr("http")

	resp, err := http.Get(base + "/mail/config-v1.1.xml?emailaddress=alice%40example.test")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("autoconfig: %d %s", resp.StatusCode, body)
	}
	var cfg struct {
		Provider struct {
			Domain   string `xml:"domain"`
			Incoming []struct {
				Type       string `xml:"type,attr"`
				Hostname   string `xml:"hostname"`
				Port       int    `xml:"port"`
				SocketType string `xml:"socketType"`
				Username   string `xml:"username"`
			} `xml:"incomingServer"`
			Outgoing []struct {
				Port       int    `xml:"port"`
				SocketType string `xml:"socketType"`
			} `xml:"outgoingServer"`
		} `xml:"emailProvider"`
	}
	if err := xml.Unmarshal(body, &cfg); err != nil {
		t.Fatalf("Thunderbird's XML does not parse: %v\n%s", err, body)
	}
	if cfg.Provider.Domain != "example.test" || len(cfg.Provider.Incoming) != 4 || len(cfg.Provider.Outgoing) != 2 {
		t.Fatalf("unexpected config:\n%s", body)
	}
	in := cfg.Provider.Incoming
	if in[0].Type != "imap" || in[0].Port != listenPort(t, s.Addr("imaps")) || in[0].SocketType != "SSL" ||
		in[1].Port != listenPort(t, s.Addr("imap")) || in[1].SocketType != "STARTTLS" ||
		in[2].Type != "pop3" || in[2].Port != listenPort(t, s.Addr("pop3s")) || in[0].Hostname != TestHostname || in[0].Username != "%EMAILADDRESS%" {
		t.Fatalf("incoming servers:\n%s", body)
	}
	if cfg.Provider.Outgoing[0].Port != listenPort(t, s.Addr("submissions")) || cfg.Provider.Outgoing[1].Port != listenPort(t, s.Addr("submission")) {
		t.Fatalf("outgoing servers:\n%s", body)
	}

	// A domain the server does not hold gets nothing.
	resp, err = http.Get(base + "/mail/config-v1.1.xml?emailaddress=bob%40elsewhere.test")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("foreign domain: %d", resp.StatusCode)
	}

	req := `<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>alice@example.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>`
	resp, err = http.Post(base+"/Autodiscover/Autodiscover.xml", "text/xml", strings.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fmt.Sprintf("<Type>IMAP</Type>\n        <Server>%s</Server>\n        <Port>%d</Port>", TestHostname, listenPort(t, s.Addr("imaps")))
	if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
		t.Fatalf("autodiscover: %d\n%s", resp.StatusCode, body)
	}
}

// TestACMECertificateOnIMAPS runs an ACME CA on loopback; the server obtains
// a certificate through a real challenge on its http/https listeners and
// serves it on IMAPS.
func TestACMECertificateOnIMAPS(t *testing.T) {
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	httpAddr, httpsAddr := freeTCPAddr(t), freeTCPAddr(t)

	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {}})
	names := dnstest.NewServer(t) // for the CA's validation, over TCP
	names.Add(TestHostname + ". A 127.0.0.1")
	validator := va.New(logger, listenPort(t, httpAddr), listenPort(t, httpsAddr), false, names.Addr, store)
	front := wfe.New(logger, store, validator, authority, nil, false, false, 0, 0)
	acmeSrv := httptest.NewTLSServer(front.Handler())
	t.Cleanup(acmeSrv.Close)
	caFile := filepath.Join(t.TempDir(), "acme-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: acmeSrv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}

	s := startServer(t, fmt.Sprintf(`[listen]
http = %q
https = %q
[tls]
acme = true
acme_directory = %q
acme_ca_file = %q
acme_email = "postmaster@posthouse.test"`, httpAddr, httpsAddr, acmeSrv.URL+"/dir", caFile))

	roots := x509.NewCertPool()
	roots.AddCert(authority.GetRootCert(0).Cert)
	var (
		conn    *tls.Conn
		lastErr error
	)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		conn, lastErr = tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", s.Addr("imaps"),
			&tls.Config{ServerName: TestHostname, RootCAs: roots})
		if lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("IMAPS never served a certificate from the ACME CA: %v", lastErr)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	greeting, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(greeting, "* OK") {
		t.Fatalf("greeting %q, %v", greeting, err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	if leaf.Issuer.CommonName == leaf.Subject.CommonName || leaf.IsCA {
		t.Fatalf("not an ACME-issued end-entity certificate: issuer %q", leaf.Issuer.CommonName)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "acme")); err != nil {
		t.Fatalf("ACME cache not kept: %v", err)
	}
}
