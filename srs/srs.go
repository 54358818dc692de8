package srs

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults for Options.
const (
	DefaultHashLen = 6
	DefaultMaxAge  = 21 * 24 * time.Hour
	// MinKeyLen is the shortest secret New accepts.
	MinKeyLen = 16
	// maxInput bounds what Forward and Reverse look at (an address is at
	// most 254 octets; SMTPUTF8 ones may use more bytes).
	maxInput = 512
	// maxLocal and maxAddress are RFC 5321 §4.5.3.1.1 and §4.5.3.1.3.
	maxLocal   = 64
	maxAddress = 254
	// tsModulo: two base32 characters hold 1024 days.
	tsModulo = 32 * 32
	day      = 24 * time.Hour
)

// Errors. Reverse's errors other than ErrNotSRS mean "one of ours, but not
// valid": a receiving server refuses the address (550 5.1.1).
var (
	// ErrNotSRS: not an SRS address at our domain.
	ErrNotSRS = errors.New("srs: not an SRS address of ours")
	// ErrMalformed: an SRS address whose fields cannot be read.
	ErrMalformed = errors.New("srs: malformed SRS address")
	// ErrBadHash: the hash does not match (forged, or made with another key).
	ErrBadHash = errors.New("srs: hash mismatch")
	// ErrExpired: made more than MaxAge ago, or dated in the future.
	ErrExpired = errors.New("srs: SRS address expired")
	// ErrTooLong: the rewritten address would be longer than SMTP allows.
	ErrTooLong = errors.New("srs: rewritten address too long")
	// ErrBadSender: Forward was given something that is not local@domain.
	ErrBadSender = errors.New("srs: malformed sender address")
)

// b32 is RFC 4648 base32 (upper case, digits 2–7), without padding.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

const b32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// Options configure New.
type Options struct {
	// Domain is where our SRS addresses live: bounces to it must reach us
	// (an MX or address record), and its SPF must allow us to send.
	Domain string
	// Secret keys the hash; at least MinKeyLen bytes (LoadKey makes 32).
	Secret []byte
	// HashLen is the number of base32 characters of hash (4 to 16).
	// Default DefaultHashLen.
	HashLen int
	// MaxAge is how long an SRS0 address stays valid (1 to 1000 days).
	// Default DefaultMaxAge.
	MaxAge time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Rewriter makes and checks SRS addresses for one domain under one key.
// It is safe for concurrent use.
type Rewriter struct {
	domain  string
	secret  []byte
	hashLen int
	maxDays int
	now     func() time.Time
}

// New checks opts and returns a Rewriter.
func New(opts Options) (*Rewriter, error) {
	d := strings.ToLower(strings.TrimSuffix(opts.Domain, "."))
	if d == "" || strings.ContainsAny(d, "@= \t\r\n<>") || len(d) > 253 {
		return nil, fmt.Errorf("srs: bad domain %q", opts.Domain)
	}
	if len(opts.Secret) < MinKeyLen {
		return nil, fmt.Errorf("srs: secret shorter than %d bytes", MinKeyLen)
	}
	if opts.HashLen == 0 {
		opts.HashLen = DefaultHashLen
	}
	if opts.HashLen < 4 || opts.HashLen > 16 {
		return nil, fmt.Errorf("srs: hash length %d not in 4..16", opts.HashLen)
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge
	}
	days := int(opts.MaxAge / day)
	if days < 1 || days > 1000 {
		return nil, fmt.Errorf("srs: max age %s not between 1 and 1000 days", opts.MaxAge)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Rewriter{domain: d, secret: append([]byte(nil), opts.Secret...), hashLen: opts.HashLen, maxDays: days, now: opts.Now}, nil
}

// Domain is the domain our SRS addresses are at, in lower case.
func (r *Rewriter) Domain() string { return r.domain }

// IsSRS reports whether address has the form of an SRS address (its local
// part starts with SRS0 or SRS1 and a separator, in any case), wherever it
// is. It does not check anything else.
func IsSRS(address string) bool {
	at := strings.LastIndexByte(address, '@')
	if at < 0 {
		return false
	}
	_, ok := srsTag(address[:at])
	return ok
}

// srsTag returns 0 or 1 for a local part starting "SRS0=" or "SRS1=" (any
// case; libsrs2 also writes "+" or "-" as the first separator).
func srsTag(local string) (int, bool) {
	if len(local) < 5 || !strings.EqualFold(local[:3], "SRS") || !isSep(local[4]) {
		return 0, false
	}
	switch local[3] {
	case '0':
		return 0, true
	case '1':
		return 1, true
	}
	return 0, false
}

func isSep(c byte) bool { return c == '=' || c == '+' || c == '-' }

// Forward returns the envelope sender for a copy of mail from sender that
// we relay: an SRS0 address at our domain, SRS1 when sender already is an
// SRS0 or SRS1 address of another domain, sender itself when it already is
// at our domain. The null sender stays null. ErrBadSender, ErrTooLong.
func (r *Rewriter) Forward(sender string) (string, error) {
	if sender == "" {
		return "", nil
	}
	if len(sender) > maxInput {
		return "", ErrBadSender
	}
	at := strings.LastIndexByte(sender, '@')
	if at <= 0 || at == len(sender)-1 {
		return "", ErrBadSender
	}
	local, domain := sender[:at], sender[at+1:]
	if strings.EqualFold(domain, r.domain) {
		return sender, nil
	}
	if strings.ContainsAny(domain, "=@ \t\r\n<>") {
		return "", ErrBadSender
	}
	var out string
	switch tag, ok := srsTag(local); {
	case ok && tag == 0:
		// Another forwarder's SRS0: keep it whole behind its host.
		rest := "=" + local[5:] // "=HHH=TT=domain=local"; the separator is normalized
		out = "SRS1=" + r.hash(domain, rest) + "=" + domain + "=" + rest
	case ok && tag == 1:
		// Keep the first hop and its SRS0 fields; our hash.
		_, hop, rest, ok := parseSRS1(local)
		if !ok {
			return r.srs0(local, domain)
		}
		out = "SRS1=" + r.hash(hop, rest) + "=" + hop + "=" + rest
	default:
		return r.srs0(local, domain)
	}
	return r.finish(out)
}

func (r *Rewriter) srs0(local, domain string) (string, error) {
	ts := timestamp(r.now())
	return r.finish("SRS0=" + r.hash(ts, domain, local) + "=" + ts + "=" + domain + "=" + local)
}

func (r *Rewriter) finish(local string) (string, error) {
	if len(local) > maxLocal || len(local)+1+len(r.domain) > maxAddress {
		return "", ErrTooLong
	}
	return local + "@" + r.domain, nil
}

// parseSRS1 splits an SRS1 local part "SRS1=HHH=hop==rest" into its hash,
// the hop and "=rest" (what followed the first hop's SRS0 tag).
func parseSRS1(local string) (hash, hop, rest string, ok bool) {
	s := local[5:]
	i := strings.IndexByte(s, '=')
	if i <= 0 {
		return "", "", "", false
	}
	hash, s = s[:i], s[i+1:] // "hop==rest"
	j := strings.IndexByte(s, '=')
	if j <= 0 || j+1 >= len(s) || s[j+1] != '=' {
		return "", "", "", false
	}
	return hash, s[:j], s[j+1:], true
}

// Reverse returns the address an SRS address of ours stands for. ErrNotSRS
// when address is not at our domain or has no SRS tag; ErrMalformed,
// ErrBadHash or ErrExpired when it is ours but not valid.
func (r *Rewriter) Reverse(address string) (string, error) {
	if len(address) > maxInput {
		return "", ErrNotSRS
	}
	at := strings.LastIndexByte(address, '@')
	if at < 0 || !strings.EqualFold(address[at+1:], r.domain) {
		return "", ErrNotSRS
	}
	local := address[:at]
	tag, ok := srsTag(local)
	if !ok {
		return "", ErrNotSRS
	}
	if tag == 1 {
		return r.reverse1(local)
	}
	// SRS0=HHH=TT=domain=local; the original local part may contain "=".
	f := strings.SplitN(local[5:], "=", 4)
	if len(f) != 4 || f[0] == "" || len(f[1]) != 2 || f[2] == "" || f[3] == "" {
		return "", ErrMalformed
	}
	hash, ts, domain, orig := f[0], f[1], f[2], f[3]
	if !r.checkHash(hash, ts, domain, orig) {
		return "", ErrBadHash
	}
	if err := r.checkTime(ts); err != nil {
		return "", err
	}
	return orig + "@" + domain, nil
}

// reverse1 checks SRS1=HHH=hop==rest and returns SRS0=rest@hop.
func (r *Rewriter) reverse1(local string) (string, error) {
	hash, hop, rest, ok := parseSRS1(local)
	if !ok {
		return "", ErrMalformed
	}
	if !r.checkHash(hash, hop, rest) {
		return "", ErrBadHash
	}
	return "SRS0" + rest + "@" + hop, nil
}

// hash is HashLen base32 characters of HMAC-SHA256 over the lower-cased
// fields joined by "=".
func (r *Rewriter) hash(fields ...string) string {
	m := hmac.New(sha256.New, r.secret)
	for i, f := range fields {
		if i > 0 {
			m.Write([]byte{'='})
		}
		m.Write([]byte(strings.ToLower(f)))
	}
	return b32.EncodeToString(m.Sum(nil))[:r.hashLen]
}

// checkHash compares in constant time, ignoring case.
func (r *Rewriter) checkHash(got string, fields ...string) bool {
	if len(got) != r.hashLen {
		return false
	}
	want := r.hash(fields...)
	return subtle.ConstantTimeCompare([]byte(strings.ToUpper(got)), []byte(want)) == 1
}

// timestamp is the day of t (days since the epoch, modulo 1024) in two
// base32 characters.
func timestamp(t time.Time) string {
	d := dayNumber(t)
	return string([]byte{b32Alphabet[d/32], b32Alphabet[d%32]})
}

// checkTime accepts a timestamp from the last maxDays days (today
// included), ignoring case.
func (r *Rewriter) checkTime(ts string) error {
	hi := strings.IndexByte(b32Alphabet, upper(ts[0]))
	lo := strings.IndexByte(b32Alphabet, upper(ts[1]))
	if hi < 0 || lo < 0 {
		return ErrMalformed
	}
	then := hi*32 + lo
	today := dayNumber(r.now())
	age := (today - then + tsModulo) % tsModulo
	if age > r.maxDays {
		return ErrExpired
	}
	return nil
}

// dayNumber is t's day since the epoch, modulo 1024.
func dayNumber(t time.Time) int {
	d := t.Unix() / int64(day/time.Second) % tsModulo
	return int((d + tsModulo) % tsModulo)
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
