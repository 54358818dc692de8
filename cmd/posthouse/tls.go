package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/posthouse/posthouse/certs"
	"github.com/posthouse/posthouse/config"
)

// Under data_dir: the self-signed certificate and the ACME cache.
const (
	selfSignedDir = "tls"
	acmeCacheDir  = "acme"
)

// newCertSource picks the one certificate source every TLS listener shares
// through tls.Config.GetCertificate, so a reload or an ACME renewal reaches
// SMTP, POP3, IMAP and HTTPS at once: [tls] acme, else cert_file/key_file,
// else the self-signed certificate kept in data_dir. isLocal answers ACME's
// question which domains are ours.
func newCertSource(cfg *config.Config, log *slog.Logger, isLocal func(context.Context, string) (bool, error)) (certs.Source, error) {
	switch {
	case cfg.TLS.ACME:
		var roots *x509.CertPool
		if f := cfg.TLS.ACMECAFile; f != "" {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("tls.acme_ca_file: %w", err)
			}
			roots = x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls.acme_ca_file: no PEM certificate in %s", f)
			}
		}
		src, err := certs.NewACME(certs.ACMEOptions{
			Logger:        log,
			Hostname:      cfg.Hostname,
			DirectoryURL:  cfg.TLS.ACMEDirectory,
			RootCAs:       roots,
			Email:         cfg.TLS.ACMEEmail,
			CacheDir:      filepath.Join(cfg.DataDir, acmeCacheDir),
			IsLocalDomain: isLocal,
		})
		if err != nil {
			return nil, err
		}
		return src, nil
	case cfg.TLS.CertFile != "":
		src, err := certs.LoadFiles(cfg.TLS.CertFile, cfg.TLS.KeyFile, log)
		if err != nil {
			return nil, err
		}
		return src, nil
	}
	src, err := certs.LoadSelfSigned(filepath.Join(cfg.DataDir, selfSignedDir), cfg.Hostname, time.Now())
	if err != nil {
		return nil, err
	}
	if src.Created {
		log.Warn("made a self-signed certificate; clients will ask to accept it, set [tls] cert_file/key_file for a real one",
			"file", src.CertFile, "hostname", cfg.Hostname)
	} else {
		log.Info("using the self-signed certificate", "file", src.CertFile)
	}
	return src, nil
}

// watchSIGHUP reloads certificate files on SIGHUP until ctx ends. SIGHUP
// never stops the server, whatever the source.
func watchSIGHUP(ctx context.Context, log *slog.Logger, src certs.Source) {
	files, _ := src.(*certs.Files)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				if files == nil {
					log.Info("SIGHUP: no certificate files to reload")
					continue
				}
				if err := files.Reload(); err != nil {
					log.Error("SIGHUP: certificate reload failed; keeping the old one", "err", err)
				}
			}
		}
	}()
}

// newTLSConfig builds the *tls.Config every TLS listener shares. Listeners
// that need more (ALPN for ACME) Clone it.
func newTLSConfig(src certs.Source) *tls.Config {
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
