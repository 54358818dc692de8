package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/posthouse/posthouse/certs"
)

func init() { registerCertSource(certsFromConfig) }

// acmeCacheDir keeps the ACME account key and certificates under data_dir.
const acmeCacheDir = "acme"

// certsFromConfig gives the certificate source for [tls] acme or
// cert_file/key_file; with neither it returns nil and the self-signed
// certificate is used. SIGHUP reloads certificate files; it never stops the
// server, whatever the source.
func certsFromConfig(ctx context.Context, a *app) (certSource, error) {
	var reload func() error
	defer func() { watchSIGHUP(ctx, a, reload) }()
	switch {
	case a.cfg.TLS.ACME:
		var roots *x509.CertPool
		if f := a.cfg.TLS.ACMECAFile; f != "" {
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
			Logger:        a.log,
			Hostname:      a.cfg.Hostname,
			DirectoryURL:  a.cfg.TLS.ACMEDirectory,
			RootCAs:       roots,
			Email:         a.cfg.TLS.ACMEEmail,
			CacheDir:      filepath.Join(a.cfg.DataDir, acmeCacheDir),
			IsLocalDomain: a.auth.IsLocalDomain,
		})
		if err != nil {
			return nil, err
		}
		return src, nil
	case a.cfg.TLS.CertFile != "":
		src, err := certs.LoadFiles(a.cfg.TLS.CertFile, a.cfg.TLS.KeyFile, a.log)
		if err != nil {
			return nil, err
		}
		reload = src.Reload
		return src, nil
	}
	return nil, nil
}

// watchSIGHUP reloads the certificate files on SIGHUP until ctx ends.
func watchSIGHUP(ctx context.Context, a *app, reload func() error) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				if reload == nil {
					a.log.Info("SIGHUP: no certificate files to reload")
					continue
				}
				if err := reload(); err != nil {
					a.log.Error("SIGHUP: certificate reload failed; keeping the old one", "err", err)
				}
			}
		}
	}()
}
