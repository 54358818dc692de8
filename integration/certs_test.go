package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// writeCert writes a CA:FALSE certificate for TestHostname, named cn, and
// its key.
func writeCert(t *testing.T, certFile, keyFile, cn string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{TestHostname}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Write beside and rename, as certificate tools do, so the server never
	// reads half a file.
	for path, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: kder}} {
		if err := os.WriteFile(path+".new", pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}
}

func servedCN(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
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
