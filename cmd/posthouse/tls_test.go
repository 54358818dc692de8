package main

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/posthouse/posthouse/certs"
)

func TestTLSConfigHandshake(t *testing.T) {
	src, err := certs.LoadSelfSigned(t.TempDir(), "mail.example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := src.GetCertificate(nil)
	cfg := newTLSConfig(src)
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
