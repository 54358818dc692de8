package queue

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/mattn/go-sqlite3"
	"github.com/miekg/dns"

	"github.com/posthouse/posthouse/internal/mailaddr"
)

// DKIM algorithms.
const (
	AlgorithmEd25519 = "ed25519"
	AlgorithmRSA     = "rsa"
	rsaKeyBits       = 2048
)

// dkimHeaderKeys are the fields we sign (RFC 6376 §5.4.1). From is listed
// twice to oversign it: a second From added in transit breaks the
// signature (RFC 6376 §8.15). Fields absent from a message are signed as
// absent, so adding them later breaks it too.
var dkimHeaderKeys = []string{
	"From", "From", "Reply-To", "Subject", "Date", "To", "Cc",
	"Message-ID", "In-Reply-To", "References", "MIME-Version",
	"Content-Type", "Content-Transfer-Encoding", "List-Unsubscribe", "List-Unsubscribe-Post",
}

// DKIMKey is a signing key for one domain and selector.
type DKIMKey struct {
	Domain    string
	Selector  string
	Algorithm string // AlgorithmEd25519 or AlgorithmRSA
	Created   time.Time
	signer    crypto.Signer
}

// TXTName is where the public key is published.
func (k DKIMKey) TXTName() string { return k.Selector + "._domainkey." + k.Domain }

// TXTValue is the DNS TXT record's text (RFC 6376 §3.6.1; RFC 8463 for
// ed25519).
func (k DKIMKey) TXTValue() string {
	var pub []byte
	switch p := k.signer.Public().(type) {
	case ed25519.PublicKey:
		pub = p // the raw 32 bytes (RFC 8463 §4.2)
	case *rsa.PublicKey:
		pub, _ = x509.MarshalPKIXPublicKey(p)
	}
	return "v=DKIM1; k=" + k.Algorithm + "; p=" + base64.StdEncoding.EncodeToString(pub)
}

// ZoneRecord renders the TXT record in zone-file syntax, split into
// strings of at most 255 bytes.
func (k DKIMKey) ZoneRecord() string {
	v := k.TXTValue()
	var parts []string
	for len(v) > 255 {
		parts = append(parts, `"`+v[:255]+`"`)
		v = v[255:]
	}
	parts = append(parts, `"`+v+`"`)
	return k.TXTName() + ". 3600 IN TXT " + strings.Join(parts, " ")
}

// DefaultSelector names a new key after its algorithm and month, so a
// rotation gets a new selector ("ed202611", "rsa202611").
func DefaultSelector(algorithm string, now time.Time) string {
	prefix := "rsa"
	if algorithm == AlgorithmEd25519 {
		prefix = "ed"
	}
	return prefix + now.UTC().Format("200601")
}

// GenerateDKIMKey makes and stores a key for domain. An existing selector
// gives ErrExists.
func (q *Queue) GenerateDKIMKey(ctx context.Context, domain, selector, algorithm string) (DKIMKey, error) {
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if _, ok := dns.IsDomainName(domain); !ok || domain == "" || strings.Count(domain, ".") == 0 {
		return DKIMKey{}, fmt.Errorf("queue: invalid domain %q", domain)
	}
	if algorithm == "" {
		algorithm = AlgorithmRSA
	}
	if selector == "" {
		selector = DefaultSelector(algorithm, q.opts.Now())
	}
	selector = strings.ToLower(selector)
	if _, ok := dns.IsDomainName(selector); !ok || strings.ContainsAny(selector, " _") {
		return DKIMKey{}, fmt.Errorf("queue: invalid selector %q", selector)
	}
	var signer crypto.Signer
	switch algorithm {
	case AlgorithmEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return DKIMKey{}, err
		}
		signer = priv
	case AlgorithmRSA:
		priv, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
		if err != nil {
			return DKIMKey{}, err
		}
		signer = priv
	default:
		return DKIMKey{}, fmt.Errorf("queue: unknown DKIM algorithm %q (want ed25519 or rsa)", algorithm)
	}
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return DKIMKey{}, err
	}
	now := q.opts.Now()
	_, err = q.db.Write.ExecContext(ctx, `INSERT INTO dkim_keys (domain, selector, algorithm, private_key, created) VALUES (?, ?, ?, ?, ?)`,
		domain, selector, algorithm, der, now.UnixNano())
	if err != nil {
		var se sqlite3.Error
		if errors.As(err, &se) && se.Code == sqlite3.ErrConstraint {
			return DKIMKey{}, fmt.Errorf("%w: DKIM selector %s for %s", ErrExists, selector, domain)
		}
		return DKIMKey{}, fmt.Errorf("queue: %w", err)
	}
	return DKIMKey{Domain: domain, Selector: selector, Algorithm: algorithm, Created: now, signer: signer}, nil
}

// DKIMKeys returns domain's keys ("": all domains'), by domain and selector.
func (q *Queue) DKIMKeys(ctx context.Context, domain string) ([]DKIMKey, error) {
	query := `SELECT domain, selector, algorithm, private_key, created FROM dkim_keys`
	var args []any
	if domain != "" {
		query += ` WHERE domain = ?`
		args = append(args, strings.ToLower(strings.TrimSuffix(domain, ".")))
	}
	rows, err := q.db.Read.QueryContext(ctx, query+` ORDER BY domain, selector`, args...)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	defer rows.Close()
	var keys []DKIMKey
	for rows.Next() {
		var k DKIMKey
		var der []byte
		var created int64
		if err := rows.Scan(&k.Domain, &k.Selector, &k.Algorithm, &der, &created); err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
		key, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("queue: DKIM key %s: %w", k.TXTName(), err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("queue: DKIM key %s: unsupported type %T", k.TXTName(), key)
		}
		k.signer = s
		k.Created = time.Unix(0, created)
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// RemoveDKIMKey deletes a key.
func (q *Queue) RemoveDKIMKey(ctx context.Context, domain, selector string) error {
	res, err := q.db.Write.ExecContext(ctx, `DELETE FROM dkim_keys WHERE domain = ? AND selector = ?`,
		strings.ToLower(domain), strings.ToLower(selector))
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: selector %s for %s", ErrNoSuchKey, selector, domain)
	}
	return nil
}

// fromDomain returns the domain of the header From address, or "".
func fromDomain(header []byte) string {
	msg, err := mail.ReadMessage(io.MultiReader(bytes.NewReader(header), strings.NewReader("\r\n")))
	if err != nil {
		return ""
	}
	list, err := msg.Header.AddressList("From")
	if err != nil || len(list) == 0 {
		return ""
	}
	d, _ := mailaddr.Domain(list[0].Address)
	return d
}

// sign returns DKIM-Signature fields for the spool file f, one per key of
// the header From's domain (or, without a usable From, of the envelope
// sender's domain), relaxed/relaxed. "" when there is no key.
func (q *Queue) sign(ctx context.Context, f *os.File, envFrom string) (string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("queue: spool: %w", err)
	}
	domain := fromDomain(ReadHeader(f, maxHeaderBytes))
	if domain == "" && envFrom != "" {
		domain, _ = mailaddr.Domain(envFrom)
	}
	if domain == "" {
		return "", nil
	}
	keys, err := q.DKIMKeys(ctx, domain)
	if err != nil || len(keys) == 0 {
		return "", err
	}
	var out strings.Builder
	for _, k := range keys {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", fmt.Errorf("queue: spool: %w", err)
		}
		s, err := dkim.NewSigner(&dkim.SignOptions{
			Domain:                 k.Domain,
			Selector:               k.Selector,
			Signer:                 k.signer,
			Hash:                   crypto.SHA256,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed,
			BodyCanonicalization:   dkim.CanonicalizationRelaxed,
			HeaderKeys:             dkimHeaderKeys,
		})
		if err != nil {
			return "", fmt.Errorf("queue: DKIM %s: %w", k.TXTName(), err)
		}
		if _, err := io.Copy(s, f); err != nil {
			s.Close()
			return "", fmt.Errorf("queue: DKIM %s: %w", k.TXTName(), err)
		}
		if err := s.Close(); err != nil {
			return "", fmt.Errorf("queue: DKIM %s: %w", k.TXTName(), err)
		}
		out.WriteString(s.Signature())
	}
	return out.String(), nil
}
