package main

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/posthouse/posthouse/certs"
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
	cert, created, err := certs.SelfSigned(filepath.Join(a.cfg.DataDir, selfSignedDir), a.cfg.Hostname, time.Now())
	if err != nil {
		return nil, err
	}
	if created {
		a.log.Warn("made a self-signed certificate; clients will ask to accept it, set [tls] cert_file/key_file for a real one",
			"file", filepath.Join(a.cfg.DataDir, selfSignedDir, certs.SelfSignedCertFile), "hostname", a.cfg.Hostname)
	} else {
		a.log.Info("using the self-signed certificate", "file", filepath.Join(a.cfg.DataDir, selfSignedDir, certs.SelfSignedCertFile))
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
const selfSignedDir = "tls"
