package smtpd

import (
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
)

// Address limits, RFC 5321 §4.5.3.1.1 (local part), §4.5.3.1.2 (domain) and
// §4.5.3.1.3 (path, 256 octets with the angle brackets).
const (
	maxLocalPartLen = 64
	maxDomainLen    = 255
	maxAddressLen   = 254
)

// parseAddress checks an address go-smtp has taken out of a MAIL or RCPT
// path and returns it with the domain in lower case. smtputf8 says whether
// the client gave SMTPUTF8 on MAIL; without it a non-ASCII address is
// refused (RFC 6531 §3.7.4.1). bad is the reply for a syntax error
// (errBadSender or errBadRecipient).
func parseAddress(s string, smtputf8 bool, bad *smtp.SMTPError) (string, error) {
	if len(s) > maxAddressLen || !utf8.ValidString(s) {
		return "", bad
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", bad
	}
	local, domain := s[:at], s[at+1:]
	if len(local) > maxLocalPartLen || len(domain) > maxDomainLen {
		return "", bad
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return "", bad
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	if !ascii && !smtputf8 {
		return "", errNeedSMTPUTF8
	}
	if !validDomain(domain) {
		return "", bad
	}
	return local + "@" + strings.ToLower(domain), nil
}

// validDomain accepts a dot-separated list of labels made of letters,
// digits and hyphens (RFC 5321 §4.1.2 Domain), U-labels (RFC 6531 §3.3), or
// an address literal in square brackets (RFC 5321 §4.1.3).
func validDomain(d string) bool {
	if d == "" {
		return false
	}
	if d[0] == '[' {
		if len(d) < 3 || d[len(d)-1] != ']' {
			return false
		}
		for _, c := range d[1 : len(d)-1] {
			if c <= ' ' || c == '[' || c == ']' || c == '\\' || c >= 0x7f {
				return false
			}
		}
		return true
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			case c >= 0x80 && c != utf8.RuneError:
			default:
				return false
			}
		}
	}
	return true
}
