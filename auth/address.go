package auth

import (
	"fmt"
	"strings"
)

// Address limits (RFC 5321 §4.5.3.1.1, §4.5.3.1.2; the path limit of 256
// octets includes the angle brackets, hence 254 for the address).
const (
	maxLocalPart = 64
	maxDomain    = 253 // DNS name without the trailing dot
	maxLabel     = 63
	maxAddress   = 254
)

// NormalizeAddress returns the canonical form of a mailbox address
// "local@domain": both parts lower-cased, the local part a dot-atom
// (RFC 5321 §4.1.2: no quoted strings, no leading, trailing or doubled dots)
// and the domain an ASCII host name (letters, digits and hyphens; IDNs must
// already be in their xn-- form). Address literals ("[192.0.2.1]"), spaces,
// control characters, quotes, missing or over-long parts are refused with
// ErrInvalidAddress. The catch-all form "@domain" is not an address; only
// AddAlias accepts it.
//
// Lower-casing the local part is a deliberate choice: RFC 5321 lets a host
// treat local parts as case-sensitive, but for our own users that only
// produces lost mail, and for foreign ones practically every host ignores case.
func NormalizeAddress(s string) (string, error) {
	if len(s) > maxAddress {
		return "", fmt.Errorf("%w: longer than %d octets", ErrInvalidAddress, maxAddress)
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", fmt.Errorf("%w: missing @", ErrInvalidAddress)
	}
	local, domain := s[:at], s[at+1:]
	if err := checkLocalPart(local); err != nil {
		return "", err
	}
	d, err := NormalizeDomain(domain)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidAddress, err)
	}
	return strings.ToLower(local) + "@" + d, nil
}

// NormalizeDomain returns the lower-case form of an ASCII host name: labels
// of letters, digits and hyphens, 1–63 octets each, not starting or ending
// with a hyphen, at most 253 octets in all, no trailing dot. Anything else is
// ErrInvalidDomain.
func NormalizeDomain(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidDomain)
	}
	if len(s) > maxDomain {
		return "", fmt.Errorf("%w: longer than %d octets", ErrInvalidDomain, maxDomain)
	}
	labelStart := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("%w: character %q", ErrInvalidDomain, c)
			}
			continue
		}
		label := s[labelStart:i]
		switch {
		case label == "":
			return "", fmt.Errorf("%w: empty label", ErrInvalidDomain)
		case len(label) > maxLabel:
			return "", fmt.Errorf("%w: label longer than %d octets", ErrInvalidDomain, maxLabel)
		case label[0] == '-' || label[len(label)-1] == '-':
			return "", fmt.Errorf("%w: label starts or ends with a hyphen", ErrInvalidDomain)
		}
		labelStart = i + 1
	}
	return strings.ToLower(s), nil
}

// checkLocalPart validates a dot-atom local part (RFC 5322 §3.2.3 atext).
func checkLocalPart(local string) error {
	if local == "" {
		return fmt.Errorf("%w: empty local part", ErrInvalidAddress)
	}
	if len(local) > maxLocalPart {
		return fmt.Errorf("%w: local part longer than %d octets", ErrInvalidAddress, maxLocalPart)
	}
	if local[0] == '.' || local[len(local)-1] == '.' {
		return fmt.Errorf("%w: local part starts or ends with a dot", ErrInvalidAddress)
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c == '.' {
			if local[i-1] == '.' {
				return fmt.Errorf("%w: consecutive dots in local part", ErrInvalidAddress)
			}
			continue
		}
		if !isAtext(c) {
			return fmt.Errorf("%w: character %q in local part", ErrInvalidAddress, c)
		}
	}
	return nil
}

// isAtext reports whether c is RFC 5322 §3.2.3 atext (ASCII only: we do not
// offer SMTPUTF8).
func isAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// normalizeLocalAccount normalizes an address that will name one of our own
// users or aliases. On top of NormalizeAddress it refuses "/" (valid atext,
// but an account name becomes a directory name in the mailstore).
func normalizeLocalAccount(s string) (string, error) {
	a, err := NormalizeAddress(s)
	if err != nil {
		return "", err
	}
	if strings.IndexByte(a, '/') >= 0 {
		return "", fmt.Errorf("%w: '/' is not allowed in a local account or alias", ErrInvalidAddress)
	}
	return a, nil
}

// normalizeAliasAddress accepts what an alias may be defined for: a local
// address, or the catch-all "@domain".
func normalizeAliasAddress(s string) (string, error) {
	if strings.HasPrefix(s, "@") {
		d, err := NormalizeDomain(s[1:])
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrInvalidAddress, err)
		}
		return "@" + d, nil
	}
	return normalizeLocalAccount(s)
}

// splitAddress splits a normalized address (or "@domain") at its last '@'.
func splitAddress(a string) (local, domain string) {
	at := strings.LastIndexByte(a, '@')
	return a[:at], a[at+1:]
}

// subaddressBase returns user@domain for user+tag@domain, and "" when the
// local part has no tag (RFC 5233 sub-addressing with '+' as separator).
func subaddressBase(a string) string {
	local, domain := splitAddress(a)
	i := strings.IndexByte(local, '+')
	if i <= 0 {
		return ""
	}
	base := local[:i]
	if base[len(base)-1] == '.' {
		return ""
	}
	return base + "@" + domain
}
