package mailauth

import (
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// Bounds of a DNS name (RFC 1035 §2.3.4).
const (
	maxDomainLen = 253
	maxLabelLen  = 63
)

// NormalizeDomain returns d lower-cased, without a trailing dot, with
// U-labels turned into A-labels (RFC 5890), so that names from a header, an
// envelope and a signature compare equal. ok is false for anything that is
// not a usable DNS name: an empty label, a label over 63 octets, a name
// over 253, a character other than letters, digits, '-' and '_'.
func NormalizeDomain(d string) (string, bool) {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 4*maxDomainLen {
		return "", false
	}
	ascii := true
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii {
		a, err := idna.Lookup.ToASCII(d)
		if err != nil {
			return "", false
		}
		d = a
	}
	d = strings.ToLower(d)
	if len(d) > maxDomainLen {
		return "", false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > maxLabelLen {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return d, true
}

// OrgDomain returns the Organizational Domain of a normalized domain (RFC
// 7489 §3.2): the public suffix plus one label, from the Public Suffix List
// built into golang.org/x/net/publicsuffix. A name that is itself a public
// suffix is its own organizational domain.
func OrgDomain(d string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// Aligned reports whether two normalized domains are in alignment (RFC
// 7489 §3.1): equal in strict mode, with the same organizational domain in
// relaxed mode.
func Aligned(a, b string, strict bool) bool {
	if a == "" || b == "" {
		return false
	}
	if a == b {
		return true
	}
	return !strict && OrgDomain(a) == OrgDomain(b)
}
