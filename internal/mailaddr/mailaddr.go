package mailaddr

import "strings"

// maxLen bounds an address (64-octet local part, '@', 255-octet domain).
const maxLen = 320

// Domain returns the lower-cased domain of addr, which must be
// local@domain with both parts non-empty and no spaces or angle brackets.
// ok is false for anything else.
func Domain(addr string) (domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 || len(addr) > maxLen || strings.ContainsAny(addr, " \t\r\n<>") {
		return "", false
	}
	return strings.ToLower(addr[i+1:]), true
}

// IsASCII reports whether s has no byte above 0x7f: an address that is
// needs no SMTPUTF8 (RFC 6531) and is an "rfc822" address type in a DSN
// (RFC 6533).
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
