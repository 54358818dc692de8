package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
)

// secretFormat describes a random secret we make and later read back as
// typed by a person: groups of characters from one alphabet, shown with
// dashes between groups, accepted with or without the dashes, with spaces,
// in any case.
type secretFormat struct {
	alphabet string
	groups   int
	group    int
}

var (
	// appPasswordFormat: 20 lowercase letters in five groups of four, 94
	// bits (20·log2 26). Letters only, so a phone keyboard never leaves
	// its first page, and no digit is mistaken for a letter.
	appPasswordFormat = secretFormat{alphabet: "abcdefghijklmnopqrstuvwxyz", groups: 5, group: 4}
	// recoveryCodeFormat: 16 characters of the RFC 4648 base32 alphabet
	// in lower case (a–z, 2–7), four groups of four, 80 bits.
	recoveryCodeFormat = secretFormat{alphabet: "abcdefghijklmnopqrstuvwxyz234567", groups: 4, group: 4}
)

// maxSecretInput bounds what parse looks at: a typed secret with generous
// separators is far shorter.
const maxSecretInput = 128

func (f secretFormat) length() int { return f.groups * f.group }

// generate returns a new secret in its display form (groups joined by
// dashes). The alphabets have 26 or 32 characters; bytes are drawn by
// rejection so every character is equally likely.
func (f secretFormat) generate() string {
	n := len(f.alphabet)
	limit := 256 - 256%n // largest multiple of n ≤ 256
	var b strings.Builder
	buf := make([]byte, 64)
	i, filled := 0, 0
	for filled < f.length() {
		if i == 0 {
			rand.Read(buf) // crypto/rand never fails on supported systems
		}
		c := int(buf[i])
		i = (i + 1) % len(buf)
		if c >= limit {
			continue
		}
		if filled > 0 && filled%f.group == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(f.alphabet[c%n])
		filled++
	}
	return b.String()
}

// parse returns the canonical form of s (the characters alone, lower case)
// if s is a secret of this format as a person may type it: dashes and
// spaces anywhere are ignored, letters in any case. ok is false for
// anything else, which then cannot be this kind of secret.
func (f secretFormat) parse(s string) (canon string, ok bool) {
	if len(s) > maxSecretInput {
		return "", false
	}
	want := f.length()
	b := make([]byte, 0, want)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if strings.IndexByte(f.alphabet, c) < 0 || len(b) == want {
			return "", false
		}
		b = append(b, c)
	}
	if len(b) != want {
		return "", false
	}
	return string(b), true
}

// Secret hashes. App passwords and recovery codes are random secrets of 80
// bits or more that we made, not passwords a person chose, so a slow hash
// buys nothing: nobody can search 2⁸⁰ candidates however fast each one is.
// They are stored as HMAC-SHA256 under a per-row random salt (the salt
// keeps equal secrets from having equal rows), "s1$<salt>$<mac>" in
// unpadded base64. Verifying costs microseconds, so app passwords need no
// place in the credential cache (doc.go).
const secretSaltLen = 16

func secretHash(canon string) string {
	salt := make([]byte, secretSaltLen)
	rand.Read(salt)
	return "s1$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(secretMAC(salt, canon))
}

func secretMAC(salt []byte, canon string) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(canon))
	return m.Sum(nil)
}

// secretMatches reports whether canon is the secret stored as h. A
// malformed h matches nothing.
func secretMatches(h, canon string) bool {
	rest, ok := strings.CutPrefix(h, "s1$")
	if !ok {
		return false
	}
	s, m, ok := strings.Cut(rest, "$")
	if !ok {
		return false
	}
	salt, err1 := b64.DecodeString(s)
	mac, err2 := b64.DecodeString(m)
	if err1 != nil || err2 != nil || len(salt) != secretSaltLen || len(mac) != sha256.Size {
		return false
	}
	return subtle.ConstantTimeCompare(secretMAC(salt, canon), mac) == 1
}

// checkName validates a name a user gives an app password: 1 to
// maxAppPasswordName bytes of printable UTF-8 after trimming spaces.
func checkName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxAppPasswordName {
		return "", fmt.Errorf("%w: want 1 to %d characters", ErrInvalidName, maxAppPasswordName)
	}
	for _, r := range name {
		if r < ' ' || r == 0x7f || r == '\uFFFD' || (r >= 0x80 && r < 0xa0) {
			return "", fmt.Errorf("%w: control or invalid character", ErrInvalidName)
		}
	}
	return name, nil
}
