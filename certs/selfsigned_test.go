package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSelfSignedCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Now()
	// load returns the certificate and whether it was made now.
	load := func(hostname string, now time.Time) (*tls.Certificate, bool, error) {
		t.Helper()
		s, err := LoadSelfSigned(dir, hostname, now)
		if err != nil {
			return nil, false, err
		}
		if s.CertFile != filepath.Join(dir, SelfSignedCertFile) {
			t.Errorf("CertFile = %s", s.CertFile)
		}
		c, err := s.GetCertificate(&tls.ClientHelloInfo{})
		return c, s.Created, err
	}
	cert, created, err := load("Mail.Example.com", now)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("first call did not report a new certificate")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.BasicConstraintsValid || leaf.IsCA {
		t.Errorf("basicConstraints: valid=%v CA=%v, want CA:FALSE", leaf.BasicConstraintsValid, leaf.IsCA)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("EKU = %v, want serverAuth", leaf.ExtKeyUsage)
	}
	if leaf.KeyUsage&x509.KeyUsageCertSign != 0 {
		t.Error("key usage includes certSign")
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	for _, name := range []string{"mail.example.com", "localhost", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("not valid for %s: %v", name, err)
		}
	}
	if err := leaf.VerifyHostname("other.example.com"); err == nil {
		t.Error("valid for a name it should not cover")
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d > 825*24*time.Hour {
		t.Errorf("validity %v exceeds 825 days", d)
	}
	// A client that trusts the certificate itself verifies it as a server
	// certificate (what "accept this certificate" amounts to).
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "mail.example.com", Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("does not verify against itself: %v", err)
	}

	for name, want := range map[string]os.FileMode{SelfSignedKeyFile: 0o600, SelfSignedCertFile: 0o600, "": 0o700} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", filepath.Join(dir, name), fi.Mode().Perm(), want)
		}
	}

	// The next start reuses it.
	again, created, err := load("mail.example.com", now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if created || !bytes.Equal(again.Certificate[0], cert.Certificate[0]) {
		t.Error("second call made a new certificate instead of reusing the kept one")
	}

	// A new hostname or a certificate near its end gets a new one.
	renamed, created, err := load("mx.example.org", now)
	if err != nil {
		t.Fatal(err)
	}
	if !created || bytes.Equal(renamed.Certificate[0], cert.Certificate[0]) {
		t.Error("hostname change did not make a new certificate")
	}
	late, created, err := load("mx.example.org", now.Add(selfSignedValidity-selfSignedRenewBefore/2))
	if err != nil {
		t.Fatal(err)
	}
	if !created || bytes.Equal(late.Certificate[0], renamed.Certificate[0]) {
		t.Error("a certificate about to expire was reused")
	}

	// A damaged file is set aside and replaced.
	if err := os.WriteFile(filepath.Join(dir, SelfSignedCertFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, created, err := load("mx.example.org", now); err != nil || !created {
		t.Errorf("damaged certificate: created=%v err=%v", created, err)
	}
	if _, err := os.Stat(filepath.Join(dir, SelfSignedCertFile+".broken")); err != nil {
		t.Errorf("damaged certificate not kept aside: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	s, err := LoadSelfSigned(dir, "mail.example.org", now)
	if err != nil {
		t.Fatal(err)
	}
	info, err := Describe(s.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	if !info.SelfSign || len(info.Names) == 0 || info.Names[0] != "mail.example.org" || info.NotAfter.Before(now.Add(800*24*time.Hour)) {
		t.Fatalf("Describe = %+v", info)
	}
	if _, err := Describe(filepath.Join(dir, SelfSignedKeyFile)); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("Describe(key file) = %v, want ErrNoCertificate", err)
	}
}
