package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSelfSignedCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Now()
	cert, created, err := selfSigned(dir, "Mail.Example.com", now)
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

	fi, err := os.Stat(filepath.Join(dir, selfSignedKey))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}

	// The next start reuses it.
	again, created, err := selfSigned(dir, "mail.example.com", now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if created || !bytes.Equal(again.Certificate[0], cert.Certificate[0]) {
		t.Error("second call made a new certificate instead of reusing the kept one")
	}

	// A new hostname or a certificate near its end gets a new one.
	renamed, created, err := selfSigned(dir, "mx.example.org", now)
	if err != nil {
		t.Fatal(err)
	}
	if !created || bytes.Equal(renamed.Certificate[0], cert.Certificate[0]) {
		t.Error("hostname change did not make a new certificate")
	}
	late, created, err := selfSigned(dir, "mx.example.org", now.Add(selfSignedValidity-selfSignedRenewBefore/2))
	if err != nil {
		t.Fatal(err)
	}
	if !created || bytes.Equal(late.Certificate[0], renamed.Certificate[0]) {
		t.Error("a certificate about to expire was reused")
	}

	// A damaged file is set aside and replaced.
	if err := os.WriteFile(filepath.Join(dir, selfSignedCert), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, created, err := selfSigned(dir, "mx.example.org", now); err != nil || !created {
		t.Errorf("damaged certificate: created=%v err=%v", created, err)
	}
	if _, err := os.Stat(filepath.Join(dir, selfSignedCert+".broken")); err != nil {
		t.Errorf("damaged certificate not kept aside: %v", err)
	}
}

func TestTLSConfigHandshake(t *testing.T) {
	cert, _, err := selfSigned(t.TempDir(), "mail.example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := newTLSConfig(staticCert{cert})
	if cfg.MinVersion != tls.VersionTLS12 || !cfg.SessionTicketsDisabled {
		t.Fatalf("MinVersion %x, SessionTicketsDisabled %v", cfg.MinVersion, cfg.SessionTicketsDisabled)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- c.(*tls.Conn).Handshake()
	}()
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	// No SNI, as many mail clients do on STARTTLS; TLS 1.2 to check the
	// suites we allow.
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "mail.example.com", MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	st := conn.ConnectionState()
	conn.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st.Version != tls.VersionTLS12 || st.DidResume {
		t.Errorf("version %x resumed %v", st.Version, st.DidResume)
	}
	if tls.CipherSuiteName(st.CipherSuite) != "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" &&
		tls.CipherSuiteName(st.CipherSuite) != "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" &&
		tls.CipherSuiteName(st.CipherSuite) != "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" {
		t.Errorf("cipher suite %s", tls.CipherSuiteName(st.CipherSuite))
	}
	// TLS 1.1 is refused.
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "mail.example.com", MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("TLS 1.1 handshake succeeded")
	}
}
