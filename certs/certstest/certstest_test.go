package certstest

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"testing"
)

// TestHandshake: a client trusting the CA completes a handshake with a
// server holding a leaf, for each loopback name, and the leaf is an
// end-entity server certificate.
func TestHandshake(t *testing.T) {
	ca := Default()
	server := ca.ServerConfig(Loopback...)
	leaf := server.Certificates[0].Leaf
	if leaf.IsCA || !leaf.BasicConstraintsValid || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("leaf: CA=%v EKU=%v, want CA:FALSE serverAuth", leaf.IsCA, leaf.ExtKeyUsage)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	for _, name := range Loopback {
		c, err := tls.Dial("tcp", ln.Addr().String(), ca.ClientConfig(name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		c.Close()
	}
	if c, err := tls.Dial("tcp", ln.Addr().String(), ca.ClientConfig("other.example")); err == nil {
		c.Close()
		t.Error("a name not in the leaf verified")
	}
	if c, err := tls.Dial("tcp", ln.Addr().String(), NewCA().ClientConfig("localhost")); err == nil {
		c.Close()
		t.Error("a client trusting another CA verified the leaf")
	}
}

// TestWriteFiles: the files load back as the same pair, and LeafWith's edit
// is applied.
func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert := Default().LeafWith(func(c *x509.Certificate) { c.Subject.CommonName = "first" }, "mail.example.com")
	WriteFiles(t, cert, cf, kf)
	got, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	if got.Leaf.Subject.CommonName != "first" || got.Leaf.VerifyHostname("mail.example.com") != nil {
		t.Errorf("loaded CN %q names %v", got.Leaf.Subject.CommonName, got.Leaf.DNSNames)
	}
	if string(got.Certificate[0]) != string(cert.Certificate[0]) {
		t.Error("loaded another certificate")
	}
}
