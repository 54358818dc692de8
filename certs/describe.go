package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

// Info describes one certificate kept in a file, for status reports.
type Info struct {
	File     string
	Names    []string // the leaf's DNS names
	NotAfter time.Time
	SelfSign bool // issued by itself
}

// ErrNoCertificate is returned by Describe for a file without a PEM
// certificate (an ACME account key, say).
var ErrNoCertificate = errors.New("certs: no certificate in file")

// Describe reads the first certificate of a PEM file: a chain (leaf
// first), or an ACME cache entry (key, then chain).
func Describe(path string) (Info, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Info{}, err
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return Info{}, fmt.Errorf("%s: %w", path, ErrNoCertificate)
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return Info{}, fmt.Errorf("certs: %s: %w", path, err)
		}
		// Our self-signed certificate is no CA (CA:FALSE), so
		// CheckSignatureFrom would refuse it as its own parent.
		self := bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
		return Info{File: path, Names: c.DNSNames, NotAfter: c.NotAfter, SelfSign: self}, nil
	}
}
