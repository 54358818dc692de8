package dkim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/mattn/go-sqlite3"
	"github.com/miekg/dns"

	"github.com/posthouse/posthouse/internal/mailaddr"
	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// Algorithms.
const (
	AlgorithmEd25519 = "ed25519"
	AlgorithmRSA     = "rsa"
	rsaKeyBits       = 2048
)

// headerKeys are the fields we sign (RFC 6376 §5.4.1). From is listed
// twice to oversign it: a second From added in transit breaks the
// signature (RFC 6376 §8.15). Fields absent from a message are signed as
// absent, so adding them later breaks it too.
var headerKeys = []string{
	"From", "From", "Reply-To", "Subject", "Date", "To", "Cc",
	"Message-ID", "In-Reply-To", "References", "MIME-Version",
	"Content-Type", "Content-Transfer-Encoding", "List-Unsubscribe", "List-Unsubscribe-Post",
}

// Sentinel errors.
var (
	ErrExists    = errors.New("dkim: already exists")
	ErrNoSuchKey = errors.New("dkim: no such DKIM key")
)

// Key is a signing key for one domain and selector.
type Key struct {
	Domain    string
	Selector  string
	Algorithm string // AlgorithmEd25519 or AlgorithmRSA
	Created   time.Time
	signer    crypto.Signer
}

// TXTName is where the public key is published.
func (k Key) TXTName() string { return k.Selector + "._domainkey." + k.Domain }

// TXTValue is the DNS TXT record's text (RFC 6376 §3.6.1; RFC 8463 for
// ed25519).
func (k Key) TXTValue() string {
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
func (k Key) ZoneRecord() string {
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

// Keys stores signing keys in the dkim_keys table of the queue's database,
// queue.sqlite (the queue's migrations create the table; its package doc
// says why the keys live there): domain, selector, algorithm, the private
// key as PKCS #8 DER, and the creation time in unix nanoseconds. It is
// safe for concurrent use.
type Keys struct {
	// write and read are the database's pools: queue.sqlite's (NewKeys)
	// or PostgreSQL's (OpenPostgresKeys); the SQL is the same.
	write, read *sql.DB
	// close closes what the store opened itself (PostgreSQL's), nil
	// for the queue's database.
	close func() error
	now   func() time.Time
}

// NewKeys returns the key store in db; now is the clock (nil: time.Now).
func NewKeys(db *sqlitedb.DB, now func() time.Time) *Keys {
	if now == nil {
		now = time.Now
	}
	return &Keys{write: db.Write, read: db.Read, now: now}
}

// Close releases what the store holds of its database: the connections of
// a PostgreSQL store; nothing for the queue's SQLite database, which the
// queue closes.
func (ks *Keys) Close() error {
	if ks.close == nil {
		return nil
	}
	return ks.close()
}

// Generate makes and stores a key for domain. An existing selector gives
// ErrExists.
func (ks *Keys) Generate(ctx context.Context, domain, selector, algorithm string) (Key, error) {
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if _, ok := dns.IsDomainName(domain); !ok || domain == "" || strings.Count(domain, ".") == 0 {
		return Key{}, fmt.Errorf("dkim: invalid domain %q", domain)
	}
	if algorithm == "" {
		algorithm = AlgorithmRSA
	}
	if selector == "" {
		selector = DefaultSelector(algorithm, ks.now())
	}
	selector = strings.ToLower(selector)
	if _, ok := dns.IsDomainName(selector); !ok || strings.ContainsAny(selector, " _") {
		return Key{}, fmt.Errorf("dkim: invalid selector %q", selector)
	}
	var signer crypto.Signer
	switch algorithm {
	case AlgorithmEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return Key{}, err
		}
		signer = priv
	case AlgorithmRSA:
		priv, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
		if err != nil {
			return Key{}, err
		}
		signer = priv
	default:
		return Key{}, fmt.Errorf("dkim: unknown algorithm %q (want ed25519 or rsa)", algorithm)
	}
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return Key{}, err
	}
	now := ks.now()
	_, err = ks.write.ExecContext(ctx, `INSERT INTO dkim_keys (domain, selector, algorithm, private_key, created) VALUES (?, ?, ?, ?, ?)`,
		domain, selector, algorithm, der, now.UnixNano())
	if err != nil {
		var se sqlite3.Error
		if errors.As(err, &se) && se.Code == sqlite3.ErrConstraint || pgdb.IsUnique(err) {
			return Key{}, fmt.Errorf("%w: DKIM selector %s for %s", ErrExists, selector, domain)
		}
		return Key{}, fmt.Errorf("dkim: %w", err)
	}
	return Key{Domain: domain, Selector: selector, Algorithm: algorithm, Created: now, signer: signer}, nil
}

// List returns domain's keys ("": all domains'), by domain and selector.
func (ks *Keys) List(ctx context.Context, domain string) ([]Key, error) {
	query := `SELECT domain, selector, algorithm, private_key, created FROM dkim_keys`
	var args []any
	if domain != "" {
		query += ` WHERE domain = ?`
		args = append(args, strings.ToLower(strings.TrimSuffix(domain, ".")))
	}
	rows, err := ks.read.QueryContext(ctx, query+` ORDER BY domain, selector`, args...)
	keys, err := sqlitedb.Collect(rows, err, scanKey)
	if err != nil {
		return nil, fmt.Errorf("dkim: %w", err)
	}
	return keys, nil
}

// scanKey scans a row of List's query and parses its private key.
func scanKey(row sqlitedb.Scanner) (Key, error) {
	var k Key
	var der []byte
	var created int64
	if err := row.Scan(&k.Domain, &k.Selector, &k.Algorithm, &der, &created); err != nil {
		return k, err
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return k, fmt.Errorf("key %s: %w", k.TXTName(), err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return k, fmt.Errorf("key %s: unsupported type %T", k.TXTName(), key)
	}
	k.signer = s
	k.Created = time.Unix(0, created)
	return k, nil
}

// Remove deletes a key.
func (ks *Keys) Remove(ctx context.Context, domain, selector string) error {
	res, err := ks.write.ExecContext(ctx, `DELETE FROM dkim_keys WHERE domain = ? AND selector = ?`,
		strings.ToLower(domain), strings.ToLower(selector))
	if err != nil {
		return fmt.Errorf("dkim: %w", err)
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

// SigningDomain returns the domain whose keys sign a message: that of the
// header From address, or, without a usable From, that of the envelope
// sender; "" when there is neither.
func SigningDomain(header []byte, envFrom string) string {
	domain := fromDomain(header)
	if domain == "" && envFrom != "" {
		domain, _ = mailaddr.Domain(envFrom)
	}
	return domain
}

// Sign returns DKIM-Signature fields for the message in r (CRLF lines),
// one per key, relaxed/relaxed, SHA-256, the headerKeys with From
// oversigned. r is read from its start once per key.
func Sign(r io.ReadSeeker, keys []Key) (string, error) {
	var out strings.Builder
	for _, k := range keys {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return "", fmt.Errorf("dkim: %w", err)
		}
		s, err := msgauth.NewSigner(&msgauth.SignOptions{
			Domain:                 k.Domain,
			Selector:               k.Selector,
			Signer:                 k.signer,
			Hash:                   crypto.SHA256,
			HeaderCanonicalization: msgauth.CanonicalizationRelaxed,
			BodyCanonicalization:   msgauth.CanonicalizationRelaxed,
			HeaderKeys:             headerKeys,
		})
		if err != nil {
			return "", fmt.Errorf("dkim: %s: %w", k.TXTName(), err)
		}
		if _, err := io.Copy(s, r); err != nil {
			s.Close()
			return "", fmt.Errorf("dkim: %s: %w", k.TXTName(), err)
		}
		if err := s.Close(); err != nil {
			return "", fmt.Errorf("dkim: %s: %w", k.TXTName(), err)
		}
		out.WriteString(s.Signature())
	}
	return out.String(), nil
}
