package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/posthouse/posthouse/internal/durable"
)

// certSource hands out the certificate for each handshake. Every TLS
// listener shares one, through tls.Config.GetCertificate, so a reload or an
// ACME renewal reaches SMTP, POP3, IMAP and HTTPS at once.
type certSource interface {
	GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
}

// certProvider may supply the certificate source (reloading files, ACME).
// It returns nil, nil when the configuration is not for it.
type certProvider func(ctx context.Context, a *app) (certSource, error)

var (
	certProvidersMu sync.Mutex
	certProviders   []certProvider
)

// registerCertSource adds a provider, called from an init() in the
// provider's own file. Providers are asked in registration order before the
// built-in one, a self-signed certificate kept in data_dir (certs_source.go
// provides ACME and certificate files that reload).
func registerCertSource(p certProvider) {
	certProvidersMu.Lock()
	defer certProvidersMu.Unlock()
	certProviders = append(certProviders, p)
}

// newCertSource picks the certificate source for a's configuration. a.auth
// is open (ACME asks it which domains are local).
func newCertSource(ctx context.Context, a *app) (certSource, error) {
	certProvidersMu.Lock()
	providers := slices.Clone(certProviders)
	certProvidersMu.Unlock()
	for _, p := range providers {
		src, err := p(ctx, a)
		if err != nil {
			return nil, err
		}
		if src != nil {
			return src, nil
		}
	}
	cert, created, err := selfSigned(filepath.Join(a.cfg.DataDir, selfSignedDir), a.cfg.Hostname, time.Now())
	if err != nil {
		return nil, err
	}
	if created {
		a.log.Warn("made a self-signed certificate; clients will ask to accept it, set [tls] cert_file/key_file for a real one",
			"file", filepath.Join(a.cfg.DataDir, selfSignedDir, selfSignedCert), "hostname", a.cfg.Hostname)
	} else {
		a.log.Info("using the self-signed certificate", "file", filepath.Join(a.cfg.DataDir, selfSignedDir, selfSignedCert))
	}
	return staticCert{cert}, nil
}

// staticCert serves one certificate for every name; mail clients often send
// no SNI on STARTTLS.
type staticCert struct{ cert *tls.Certificate }

func (s staticCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert, nil
}

// newTLSConfig builds the *tls.Config every TLS listener shares. Listeners
// that need more (ALPN for ACME) Clone it.
func newTLSConfig(src certSource) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// TLS 1.2 suites: forward-secret AEADs only. TLS 1.3 suites are not
		// configurable and all fine.
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		// Microsoft's outbound SMTP (Exchange Online) aborts STARTTLS when it
		// is offered a session ticket it then fails to use; resumption
		// saves little for mail, so tickets are off.
		SessionTicketsDisabled: true,
		GetCertificate:         src.GetCertificate,
	}
}

// The self-signed certificate lives in <data_dir>/tls/.
const (
	selfSignedDir  = "tls"
	selfSignedCert = "cert.pem"
	selfSignedKey  = "key.pem"
	// selfSignedValidity stays under the 825 days Apple's clients accept
	// for a TLS server certificate, even one the user trusts by hand.
	selfSignedValidity = 820 * 24 * time.Hour
	// selfSignedRenewBefore: a certificate closer than this to its end is
	// replaced at start.
	selfSignedRenewBefore = 30 * 24 * time.Hour
)

// selfSigned returns the certificate kept in dir when it still suits
// hostname and is not about to expire, or makes and keeps a new one. It is
// an end-entity certificate (CA:FALSE, serverAuth, SAN with the hostname):
// Thunderbird refuses a CA certificate used as a server certificate even
// when the user accepts an exception.
func selfSigned(dir, hostname string, now time.Time) (cert *tls.Certificate, created bool, err error) {
	certPath, keyPath := filepath.Join(dir, selfSignedCert), filepath.Join(dir, selfSignedKey)
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		leaf := c.Leaf
		if leaf == nil {
			leaf, err = x509.ParseCertificate(c.Certificate[0])
		}
		if err == nil && leaf.VerifyHostname(hostname) == nil && now.Add(selfSignedRenewBefore).Before(leaf.NotAfter) {
			c.Leaf = leaf
			return &c, false, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		// A damaged pair is replaced; the old files are kept aside.
		for _, p := range []string{certPath, keyPath} {
			os.Rename(p, p+".broken")
		}
	}

	certPEM, keyPEM, err := makeSelfSigned(hostname, now)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, err
	}
	// Key first: a crash in between leaves a key without a certificate,
	// which the next start replaces.
	if err := durable.WriteFile(keyPath, keyPEM, privateFileMode); err != nil {
		return nil, false, err
	}
	if err := durable.WriteFile(certPath, certPEM, privateFileMode); err != nil {
		return nil, false, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, false, err
	}
	return &c, true, nil
}

// makeSelfSigned makes an ECDSA P-256 end-entity certificate for hostname,
// also valid for localhost, 127.0.0.1 and ::1.
func makeSelfSigned(hostname string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	hostname = strings.ToLower(strings.TrimSuffix(hostname, "."))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname, Organization: []string{"Posthouse self-signed"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(selfSignedValidity),
		// ECDSA keys sign; key encipherment is for RSA key exchange.
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(hostname); ip != nil {
		if !ip.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	} else if hostname != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, hostname)
	}
	tmpl.DNSNames = append(tmpl.DNSNames, "localhost")
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}
