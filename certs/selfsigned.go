package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/posthouse/posthouse/internal/durable"
)

// The self-signed certificate's files, in the directory given to
// LoadSelfSigned (cmd/posthouse uses <data_dir>/tls/).
const (
	SelfSignedCertFile = "cert.pem"
	SelfSignedKeyFile  = "key.pem"
	// selfSignedValidity stays under the 825 days Apple's clients accept
	// for a TLS server certificate, even one the user trusts by hand.
	selfSignedValidity = 820 * 24 * time.Hour
	// selfSignedRenewBefore: a certificate closer than this to its end is
	// replaced at start.
	selfSignedRenewBefore = 30 * 24 * time.Hour
	// Owner-only, like everything under data_dir.
	privateDirMode  = 0o700
	privateFileMode = 0o600
)

// SelfSigned serves the certificate Posthouse made for itself, for every
// handshake whatever the SNI.
type SelfSigned struct {
	cert *tls.Certificate
	// Created tells whether the certificate was made by this call rather
	// than reused from an earlier start.
	Created bool
	// CertFile is where the certificate is kept, for an administrator to
	// compare with what a client shows.
	CertFile string
}

// LoadSelfSigned returns the self-signed certificate kept in dir, made
// anew when there is none, when it no longer suits hostname, or when it is
// within selfSignedRenewBefore of its end at now.
func LoadSelfSigned(dir, hostname string, now time.Time) (*SelfSigned, error) {
	cert, created, err := selfSigned(dir, hostname, now)
	if err != nil {
		return nil, fmt.Errorf("certs: self-signed certificate in %s: %w", dir, err)
	}
	return &SelfSigned{cert: cert, Created: created, CertFile: filepath.Join(dir, SelfSignedCertFile)}, nil
}

// GetCertificate returns the certificate.
func (s *SelfSigned) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert, nil
}

// selfSigned returns the certificate kept in dir when it still suits
// hostname and is not about to expire, or makes and keeps a new one. It is
// an end-entity certificate (CA:FALSE, serverAuth, SAN with the hostname):
// Thunderbird refuses a CA certificate used as a server certificate even
// when the user accepts an exception. Its files are owner-only.
func selfSigned(dir, hostname string, now time.Time) (cert *tls.Certificate, created bool, err error) {
	certPath, keyPath := filepath.Join(dir, SelfSignedCertFile), filepath.Join(dir, SelfSignedKeyFile)
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
	if err := os.MkdirAll(dir, privateDirMode); err != nil {
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
