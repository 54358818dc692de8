package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"

	"github.com/posthouse/posthouse/certs/certstest"
	"github.com/posthouse/posthouse/dns/dnstest"
)

func TestFilesReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	certstest.WriteFiles(t, certstest.Default().Leaf("one.example"), cf, kf)
	f, err := LoadFiles(cf, kf, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f.now = func() time.Time { return now }
	cn := func() string {
		c, err := f.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.Subject.CommonName
	}
	if got := cn(); got != "one.example" {
		t.Fatal(got)
	}
	certstest.WriteFiles(t, certstest.Default().Leaf("two.example"), cf, kf)
	if got := cn(); got != "one.example" {
		t.Fatalf("reloaded before the check interval: %s", got)
	}
	now = now.Add(ReloadCheckInterval)
	if got := cn(); got != "two.example" {
		t.Fatalf("not reloaded after change: %s", got)
	}
	// A broken file keeps the working certificate.
	if err := os.WriteFile(kf, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(ReloadCheckInterval)
	if got := cn(); got != "two.example" {
		t.Fatalf("broken reload replaced the certificate: %s", got)
	}
	if err := f.Reload(); err == nil {
		t.Fatal("explicit reload of a broken key succeeded")
	}
}

func TestLoadFilesRefusesMismatch(t *testing.T) {
	dir := t.TempDir()
	certstest.WriteFiles(t, certstest.Default().Leaf("a"), filepath.Join(dir, "a.pem"), filepath.Join(dir, "ak.pem"))
	certstest.WriteFiles(t, certstest.Default().Leaf("b"), filepath.Join(dir, "b.pem"), filepath.Join(dir, "bk.pem"))
	if _, err := LoadFiles(filepath.Join(dir, "a.pem"), filepath.Join(dir, "bk.pem"), nil); err == nil {
		t.Fatal("mismatched key accepted")
	}
	if _, err := LoadFiles(filepath.Join(dir, "none.pem"), filepath.Join(dir, "bk.pem"), nil); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestHostPolicy(t *testing.T) {
	p := hostPolicy("mail.example.test", func(_ context.Context, d string) (bool, error) { return d == "example.test", nil })
	for host, ok := range map[string]bool{
		"mail.example.test": true, "MAIL.example.test": true, "autoconfig.example.test": true,
		"autodiscover.example.test": true, "autoconfig.evil.test": false, "evil.test": false, "example.test": false,
	} {
		if err := p(context.Background(), host); (err == nil) != ok {
			t.Errorf("%s: err=%v", host, err)
		}
	}
}

func port(t *testing.T, addr net.Addr) int { return addr.(*net.TCPAddr).Port }

// TestACMEWithPebble runs an ACME CA in process, on loopback, and proves that
// a certificate is obtained through a real challenge and then served by a TLS
// listener, with and without SNI.
func TestACMEWithPebble(t *testing.T) {
	if testing.Short() {
		t.Skip("ACME issuance in -short mode")
	}
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	const host = "mail.example.test"

	// Our listeners: HTTP-01 on one port, TLS (and TLS-ALPN-01) on another.
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}

	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {}})
	names := dnstest.NewServer(t) // for the CA's validation, over TCP
	names.Add(host + ". A 127.0.0.1")
	validator := va.New(logger, port(t, httpLn.Addr()), port(t, tlsLn.Addr()), false, names.Addr, store)
	front := wfe.New(logger, store, validator, authority, nil, false, false, 0, 0)
	acmeSrv := httptest.NewTLSServer(front.Handler())
	t.Cleanup(acmeSrv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(acmeSrv.Certificate())

	a, err := NewACME(ACMEOptions{Hostname: host, DirectoryURL: acmeSrv.URL + "/dir", RootCAs: pool,
		CacheDir: filepath.Join(t.TempDir(), "acme"), Email: "postmaster@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: a.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "fallback")
	})), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(httpLn)
	t.Cleanup(func() { hs.Close() })
	tlsCfg := &tls.Config{GetCertificate: a.GetCertificate, NextProtos: append([]string{"imap"}, a.NextProtos()...), MinVersion: tls.VersionTLS12}
	go func() {
		for {
			c, err := tlsLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, tlsCfg)
				tc.SetDeadline(time.Now().Add(30 * time.Second))
				if tc.Handshake() == nil {
					io.WriteString(tc, "* OK ready\r\n")
				}
			}()
		}
	}()
	t.Cleanup(func() { tlsLn.Close() })

	if err := a.Prefetch(); err != nil {
		t.Fatalf("prefetch: %v", err)
	}

	roots := x509.NewCertPool()
	roots.AddCert(authority.GetRootCert(0).Cert)
	conn, err := tls.Dial("tcp", tlsLn.Addr().String(), &tls.Config{ServerName: host, RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS with SNI: %v", err)
	}
	line, _ := io.ReadAll(io.LimitReader(conn, 12))
	conn.Close()
	if !strings.HasPrefix(string(line), "* OK") {
		t.Fatalf("greeting %q", line)
	}

	// No SNI (STARTTLS clients, IP literals): the hostname's certificate.
	raw, err := net.Dial("tcp", tlsLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS without SNI: %v", err)
	}
	leaf := tc.ConnectionState().PeerCertificates[0]
	tc.Close()
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: certPool(tc.ConnectionState().PeerCertificates[1:])}); err != nil {
		t.Fatalf("no-SNI certificate does not verify for %s: %v", host, err)
	}

	// A name we do not hold is never requested.
	if _, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: "evil.test"}); err == nil {
		t.Fatal("certificate for a foreign name")
	}

	// Non-challenge HTTP requests reach the fallback.
	resp, err := http.Get("http://" + httpLn.Addr().String() + "/mail/config-v1.1.xml")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "fallback" {
		t.Fatalf("fallback body %q", body)
	}
}

func certPool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
