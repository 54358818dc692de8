package smtpd

import (
	"crypto/tls"
	"net/netip"
	"strings"
	"time"
)

// receivedInfo is what goes into our Received header.
type receivedInfo struct {
	helo     string
	remote   netip.Addr
	hostname string
	tls      *tls.ConnectionState
	user     string // authenticated user, "" if none
	utf8     bool   // SMTPUTF8 transaction
	id       string
	rcpts    []string
	date     time.Time
}

// receivedHeader renders the Received field (RFC 5321 §4.4), folded, with
// CRLF line endings:
//
//	Received: from client.example ([192.0.2.1])
//		by mx.example.org (Posthouse) with ESMTPSA id 1f2e3d1.1
//		(version=TLS1.3 cipher=TLS_AES_128_GCM_SHA256)
//		(authenticated as alice@example.org)
//		for <bob@example.org>; Mon, 02 Jan 2006 15:04:05 +0000
//
// The protocol keyword follows RFC 3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA) and
// RFC 6531 §3.7.3 (UTF8SMTP…). "for" is given only with a single recipient,
// so that one copy does not reveal the others (Bcc).
func receivedHeader(ri receivedInfo) string {
	var b strings.Builder
	b.WriteString("Received: from ")
	b.WriteString(sanitizeHelo(ri.helo))
	b.WriteString(" (")
	b.WriteString(addressLiteral(ri.remote))
	b.WriteString(")\r\n\tby ")
	b.WriteString(ri.hostname)
	b.WriteString(" (Posthouse) with ")
	b.WriteString(withProtocol(ri.utf8, ri.tls != nil, ri.user != ""))
	b.WriteString(" id ")
	b.WriteString(ri.id)
	if ri.tls != nil {
		v, cipher := tlsSummary(ri.tls)
		b.WriteString("\r\n\t(version=")
		b.WriteString(v)
		b.WriteString(" cipher=")
		b.WriteString(cipher)
		b.WriteString(")")
	}
	if ri.user != "" {
		b.WriteString("\r\n\t(authenticated as ")
		b.WriteString(sanitizeComment(ri.user))
		b.WriteString(")")
	}
	if len(ri.rcpts) == 1 {
		b.WriteString("\r\n\tfor <")
		b.WriteString(ri.rcpts[0])
		b.WriteString(">")
	}
	b.WriteString("; ")
	b.WriteString(ri.date.Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return b.String()
}

// withProtocol names the transmission type (RFC 3848, RFC 6531 §3.7.3).
func withProtocol(utf8, tls, auth bool) string {
	p := "ESMTP"
	if utf8 {
		p = "UTF8SMTP"
	}
	if tls {
		p += "S"
	}
	if auth {
		p += "A"
	}
	return p
}

// addressLiteral renders an IP as RFC 5321 §4.1.3 writes it.
func addressLiteral(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is4():
		return "[" + a.String() + "]"
	default:
		return "[IPv6:" + a.String() + "]"
	}
}

// sanitizeHelo keeps the client's EHLO argument usable in a header: printable
// ASCII without the characters that would end the clause or the comment.
func sanitizeHelo(h string) string {
	var b strings.Builder
	for i := 0; i < len(h) && b.Len() < 255; i++ {
		c := h[i]
		if c > ' ' && c < 0x7f && !strings.ContainsRune("();\\\"", rune(c)) {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}

// sanitizeComment drops what could end a header comment early.
func sanitizeComment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '(' || r == ')' || r == '\\' {
			return -1
		}
		return r
	}, s)
}
