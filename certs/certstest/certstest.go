// Package certstest makes certificates for tests: a CA, leaf certificates
// it issues for host names and IP addresses, a *tls.Config for a server and
// one for a client that trusts the CA, and PEM files for code that loads a
// certificate from disk. Every test that needs a certificate uses it, so
// what a test certificate looks like is decided once.
//
// Leaves are what Posthouse itself serves: ECDSA P-256 end-entity
// certificates (CA:FALSE, serverAuth) with the names in the SAN. Keys and
// certificates live in memory and are valid for a day around the time they
// are made. Test code only.
package certstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// Loopback are the names of a test server on this machine: a client may
// dial 127.0.0.1 or ::1, or name it localhost.
var Loopback = []string{"localhost", "127.0.0.1", "::1"}

// CA issues test certificates.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA. Most tests share Default instead.
func NewCA() *CA {
	key := newKey()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: "Posthouse test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic("certstest: " + err.Error())
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic("certstest: " + err.Error())
	}
	return &CA{Cert: cert, key: key}
}

// Default is the CA shared by the tests of one process.
var Default = sync.OnceValue(NewCA)

// Leaf issues a server certificate for names (host names or IP addresses),
// with the first as its common name.
func (ca *CA) Leaf(names ...string) tls.Certificate {
	return ca.LeafWith(nil, names...)
}

// LeafWith is Leaf with edit applied to the certificate before it is
// signed (another common name, validity or key usage).
func (ca *CA) LeafWith(edit func(*x509.Certificate), names ...string) tls.Certificate {
	key := newKey()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if len(names) > 0 {
		tmpl.Subject.CommonName = names[0]
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		panic("certstest: " + err.Error())
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic("certstest: " + err.Error())
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// ServerConfig is a server's *tls.Config with a leaf for names.
func (ca *CA) ServerConfig(names ...string) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{ca.Leaf(names...)}}
}

// Pool holds the CA certificate, for clients that trust it.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// ClientConfig is a client's *tls.Config that trusts the CA and expects
// serverName (a host name or an IP address) in the server's certificate.
func (ca *CA) ClientConfig(serverName string) *tls.Config {
	return &tls.Config{RootCAs: ca.Pool(), ServerName: serverName}
}

// PEM is the CA certificate in PEM, for a file a client or server loads.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// WriteFiles writes cert's chain and key as PEM (PKCS #8 key), each
// written beside and renamed into place, as certificate tools do, so a
// server that reloads never reads half a file.
func WriteFiles(t testing.TB, cert tls.Certificate, certFile, keyFile string) {
	t.Helper()
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string][]byte{
		certFile: chain,
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(path+".new", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}
}

func newKey() *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic("certstest: " + err.Error())
	}
	return key
}

// newSerial is random, so that two certificates never share one.
func newSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("certstest: " + err.Error())
	}
	return n
}
