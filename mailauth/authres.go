package mailauth

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-msgauth/authres"
)

// maxPvalue bounds one value in the field (a domain is at most 253
// octets; an address 320): a hostile signature or envelope cannot make a
// line longer than RFC 5322's 998 octets, even with every octet escaped.
const maxPvalue = 200

// AuthenticationResults renders the value of one Authentication-Results
// field (RFC 8601) for r, with authservID (our host name) first and one
// result per line: iprev, spf, each DKIM signature, dmarc. The values come
// from the client (HELO, MAIL FROM, From:, a signature's d= and i=): each
// is bounded, stripped of control characters and of what go-msgauth's
// authres quoting cannot carry (a backslash), and quoted by authres where it
// is not a plain token or address.
func (r *Results) AuthenticationResults(authservID string) string {
	var parts []authres.Result
	if r.IPRev.IP.IsValid() {
		parts = append(parts, &authres.IPRevResult{Value: authres.ResultValue(r.IPRev.Result), IP: r.IPRev.IP.String()})
	}
	spfRes := &authres.SPFResult{Value: authres.ResultValue(r.SPF.Result)}
	if r.SPF.Identity == IdentityHelo {
		spfRes.Helo = pvalue(r.SPF.Sender)
	} else {
		spfRes.From = pvalue(r.SPF.Sender)
	}
	parts = append(parts, spfRes)
	switch {
	case r.DKIMErr != nil:
		parts = append(parts, &authres.DKIMResult{Value: authres.ResultPermError, Reason: "unreadable header"})
	case len(r.DKIM) == 0:
		parts = append(parts, &authres.DKIMResult{Value: authres.ResultNone})
	}
	for _, v := range r.DKIM {
		parts = append(parts, &authres.DKIMResult{Value: authres.ResultValue(v.Result), Domain: pvalue(v.Domain), Identifier: pvalue(v.Identifier)})
	}
	dm := &authres.GenericResult{Method: "dmarc", Value: authres.ResultValue(r.DMARC.Result), Params: map[string]string{}}
	if r.DMARC.FromErr != nil {
		dm.Params["reason"] = strings.TrimPrefix(r.DMARC.FromErr.Error(), "mailauth: ")
	} else {
		dm.Params["header.from"] = pvalue(r.DMARC.Domain)
		if r.DMARC.Policy != "" {
			dm.Params["policy.dmarc"] = string(r.DMARC.Policy)
		}
	}
	parts = append(parts, dm)

	var b strings.Builder
	b.WriteString(authservID)
	for _, p := range parts {
		// Format renders "id; method=value params"; keep what follows
		// the id, one result per line.
		s := authres.Format("", []authres.Result{p})
		b.WriteString(";\r\n\t")
		b.WriteString(strings.TrimSpace(strings.TrimPrefix(s, ";")))
	}
	return b.String()
}

// pvalue makes a client-supplied string safe for authres's formatting: at
// most maxPvalue octets of valid UTF-8, with no control characters, no
// backslash (authres quotes with '"' but does not escape '\', so a
// trailing one would swallow the closing quote) and no non-ASCII character
// that is not a letter or digit (authres leaves those unquoted, where RFC
// 8601 allows only tokens).
func pvalue(s string) string {
	var b strings.Builder
	for i, c := range s {
		if b.Len() >= maxPvalue {
			break
		}
		switch {
		case c == utf8.RuneError && !validAt(s, i):
			b.WriteByte('?')
		case c < 0x20 || c == 0x7f || c == '\\':
			b.WriteByte('?')
		case c >= 0x80 && !unicode.IsLetter(c) && !unicode.IsDigit(c):
			b.WriteByte('?')
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// validAt reports whether s has a valid UTF-8 sequence at i (a real
// U+FFFD rather than a decoding error).
func validAt(s string, i int) bool {
	_, n := utf8.DecodeRuneInString(s[i:])
	return n == 3
}
