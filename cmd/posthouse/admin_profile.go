package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/posthouse/posthouse/autoconfig"
)

// userProfile writes an Apple configuration profile for one user. It is
// signed with the server's certificate when that is a real one (cert_file
// or an ACME certificate already obtained); the self-signed certificate
// would only make the installer warn, so such a profile stays unsigned.
func userProfile(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "user", "profile", "--apple [--with-password] [--password-stdin] [--name NAME] ADDRESS")
	apple := fs.Bool("apple", false, "an Apple configuration profile (iPhone, iPad, Mac Mail); the only format so far")
	withPassword := fs.Bool("with-password", false, "put the user's password in the profile (asked for, and checked)")
	fromStdin := fs.Bool("password-stdin", false, "with --with-password: read the password from the first line of stdin")
	name := fs.String("name", "", "the name on sent mail (default: the device asks)")
	rest, err := verbArgs(fs, args, 1, 1, "ADDRESS")
	if err != nil {
		return err
	}
	if !*apple {
		return usageError("say which format: --apple")
	}
	u, err := env.auth.User(ctx, rest[0])
	if err != nil {
		return err
	}
	p := autoconfig.Profile{Address: u.Address, DisplayName: *name, Organization: env.cfg.Hostname}
	if *withPassword {
		pw, err := readPassword(env, *fromStdin, "Password of "+u.Address)
		if err != nil {
			return err
		}
		if _, err := env.auth.Authenticate(ctx, u.Address, pw, netip.IPv6Loopback()); err != nil {
			return fmt.Errorf("that is not %s's password: %w", u.Address, err)
		}
		p.Password = pw
	}
	h := autoconfig.New(autoconfigOptions(env.cfg, env.auth, env.log))
	data, err := h.AppleProfile(ctx, p)
	if err != nil {
		return err
	}
	cert, err := profileSigner(env)
	switch {
	case err != nil:
		return err
	case cert == nil:
		fmt.Fprintln(env.stderr, "note: the profile is not signed (the server has only its self-signed certificate); the device will call it unverified")
	default:
		leaf, _ := x509.ParseCertificate(cert.Certificate[0])
		var chain []*x509.Certificate
		for _, der := range cert.Certificate[1:] {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return fmt.Errorf("certificate chain: %w", err)
			}
			chain = append(chain, c)
		}
		signer, ok := cert.PrivateKey.(crypto.Signer)
		if !ok {
			return errors.New("the certificate's key cannot sign")
		}
		if data, err = autoconfig.SignProfile(data, leaf, chain, signer); err != nil {
			return err
		}
	}
	_, err = env.stdout.Write(data)
	return err
}

// profileSigner returns the server's real certificate: cert_file/key_file,
// or with ACME the hostname's certificate in the ACME cache (never
// obtained here). nil: only the self-signed certificate exists.
func profileSigner(env *adminEnv) (*tls.Certificate, error) {
	cfg := env.cfg
	switch {
	case cfg.TLS.CertFile != "":
		c, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file: %w", err)
		}
		return &c, nil
	case cfg.TLS.ACME:
		// autocert keeps the key and the chain, PEM, in one file named
		// after the host (ECDSA keys, its default).
		data, err := os.ReadFile(filepath.Join(cfg.DataDir, acmeCacheDir, cfg.Hostname))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var certPEM, keyPEM []byte
		for {
			var b *pem.Block
			if b, data = pem.Decode(data); b == nil {
				break
			}
			if b.Type == "CERTIFICATE" {
				certPEM = append(certPEM, pem.EncodeToMemory(b)...)
			} else {
				keyPEM = pem.EncodeToMemory(b)
			}
		}
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("ACME certificate of %s: %w", cfg.Hostname, err)
		}
		return &c, nil
	}
	return nil, nil
}
