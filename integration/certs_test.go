package integration

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/posthouse/posthouse/certs/certstest"
)

// writeCert writes a certificate for TestHostname, with common name cn to
// tell which one is served, and its key.
func writeCert(t *testing.T, certFile, keyFile, cn string) {
	t.Helper()
	leaf := certstest.Default().LeafWith(func(c *x509.Certificate) { c.Subject.CommonName = cn }, TestHostname)
	certstest.WriteFiles(t, leaf, certFile, keyFile)
}

// servedCN is the common name of the certificate served at addr, which
// must verify for TestHostname.
func servedCN(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, certstest.Default().ClientConfig(TestHostname))
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestCertificateFilesReloadOnSIGHUP: the configured files are served on
// every TLS listener, and replaced files are picked up on SIGHUP without a
// restart (and without SIGHUP stopping the server).
func TestCertificateFilesReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	writeCert(t, certFile, keyFile, "first")
	s := startServer(t, fmt.Sprintf("[tls]\ncert_file = %q\nkey_file = %q\n", certFile, keyFile))
	for _, l := range []string{"imaps", "pop3s", "submissions"} {
		if cn := servedCN(t, s.Addr(l)); cn != "first" {
			t.Fatalf("%s serves %q", l, cn)
		}
	}
	writeCert(t, certFile, keyFile, "second")
	if err := s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for servedCN(t, s.Addr("imaps")) != "second" {
		if time.Now().After(deadline) {
			t.Fatal("the replaced certificate was not served after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if cn := servedCN(t, s.Addr("submissions")); cn != "second" {
		t.Fatalf("submissions still serves %q", cn)
	}
	if !s.running() {
		t.Fatal("SIGHUP stopped the server")
	}
}
