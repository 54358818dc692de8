package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// Source hands out the certificate for a TLS handshake.
type Source interface {
	GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
}

// ReloadCheckInterval bounds how often Files looks at the files' metadata.
const ReloadCheckInterval = 10 * time.Second

// Files serves a certificate loaded from PEM files.
type Files struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // size and mtime of both files at the last load
	lastCheck time.Time
}

// LoadFiles loads the certificate chain and key; it fails if they do not
// load or do not match.
func LoadFiles(certFile, keyFile string, log *slog.Logger) (*Files, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Files{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *Files) fileStamp() (string, error) {
	var b strings.Builder
	for _, name := range []string{f.certFile, f.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d.%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
}

// Reload reads both files again. On error the current certificate stays.
func (f *Files) Reload() error {
	stamp, err := f.fileStamp()
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return fmt.Errorf("certs: load %s and %s: %w", f.certFile, f.keyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("certs: parse %s: %w", f.certFile, err)
	}
	cert.Leaf = leaf
	f.mu.Lock()
	f.cert, f.stamp, f.lastCheck = &cert, stamp, f.now()
	f.mu.Unlock()
	f.log.Info("certificate loaded", "file", f.certFile, "subject", leaf.Subject.CommonName,
		"names", strings.Join(leaf.DNSNames, ","), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// GetCertificate returns the current certificate, reloading it first if the
// files changed since the last look.
func (f *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	check := f.now().Sub(f.lastCheck) >= ReloadCheckInterval
	if check {
		f.lastCheck = f.now()
	}
	stamp := f.stamp
	f.mu.Unlock()
	if check {
		if cur, err := f.fileStamp(); err == nil && cur != stamp {
			if err := f.Reload(); err != nil {
				f.log.Error("certificate reload failed; keeping the old one", "err", err)
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cert, nil
}

// ACMEOptions configure an ACME source.
type ACMEOptions struct {
	Logger *slog.Logger
	// Hostname is the server's name: always allowed, and the name used for
	// handshakes that carry no SNI.
	Hostname string
	// DirectoryURL is the CA's ACME directory (default Let's Encrypt).
	DirectoryURL string
	// RootCAs verify the directory's HTTPS (nil: the system's roots); for a
	// private or test CA.
	RootCAs *x509.CertPool
	Email   string
	// CacheDir keeps the account key and certificates (created 0700).
	CacheDir string
	// IsLocalDomain decides which autoconfig./autodiscover. names are ours.
	IsLocalDomain func(ctx context.Context, domain string) (bool, error)
}

// ACME obtains and renews certificates from an ACME CA.
type ACME struct {
	m        *autocert.Manager
	hostname string
	log      *slog.Logger
}

// NewACME returns an ACME source. Nothing is requested until Prefetch or the
// first handshake.
func NewACME(opts ACMEOptions) (*ACME, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Hostname == "" || opts.CacheDir == "" {
		return nil, errors.New("certs: ACME needs a hostname and a cache directory")
	}
	if opts.DirectoryURL == "" {
		opts.DirectoryURL = autocert.DefaultACMEDirectory
	}
	if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	hostname := strings.ToLower(strings.TrimSuffix(opts.Hostname, "."))
	client := &acme.Client{DirectoryURL: opts.DirectoryURL, UserAgent: "posthouse"}
	if opts.RootCAs != nil {
		client.HTTPClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
		}}
	}
	a := &ACME{hostname: hostname, log: opts.Logger}
	a.m = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(opts.CacheDir),
		Client:     client,
		Email:      opts.Email,
		HostPolicy: hostPolicy(hostname, opts.IsLocalDomain),
	}
	return a, nil
}

// hostPolicy allows the hostname and the client-setup names of local
// domains, so nobody can make us ask the CA for arbitrary names.
func hostPolicy(hostname string, isLocal func(context.Context, string) (bool, error)) autocert.HostPolicy {
	return func(ctx context.Context, host string) error {
		host = strings.ToLower(host)
		if host == hostname {
			return nil
		}
		for _, prefix := range []string{"autoconfig.", "autodiscover.", "mta-sts."} {
			if d, ok := strings.CutPrefix(host, prefix); ok && isLocal != nil {
				local, err := isLocal(ctx, d)
				if err != nil {
					return err
				}
				if local {
					return nil
				}
			}
		}
		return fmt.Errorf("certs: %q is not a name this server holds", host)
	}
}

// GetCertificate answers TLS-ALPN-01 challenges and hands out certificates,
// using the hostname when the client sent no SNI.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" {
		h := *hello
		h.ServerName = a.hostname
		hello = &h
	}
	return a.m.GetCertificate(hello)
}

// HTTPHandler answers HTTP-01 challenges on port 80 and passes every other
// request to fallback.
func (a *ACME) HTTPHandler(fallback http.Handler) http.Handler {
	if fallback == nil {
		fallback = http.NotFoundHandler()
	}
	return a.m.HTTPHandler(fallback)
}

// NextProtos lists the ALPN protocol a TLS listener must offer for
// TLS-ALPN-01.
func (a *ACME) NextProtos() []string { return []string{acme.ALPNProto} }

// Prefetch obtains (or loads from the cache) the hostname's certificate, so
// the first client does not wait on the CA. autocert bounds the exchange with
// the CA by its own timeout; run Prefetch in a goroutine.
func (a *ACME) Prefetch() error {
	cert, err := a.m.GetCertificate(&tls.ClientHelloInfo{ServerName: a.hostname,
		CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12}})
	if err != nil {
		a.log.Error("ACME certificate not obtained", "host", a.hostname, "err", err)
		return err
	}
	a.log.Info("ACME certificate ready", "host", a.hostname, "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}
