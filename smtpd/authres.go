package smtpd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
)

// DKIMVerifier checks the DKIM signatures of an inbound message (package
// dkim does, through the configured resolver; cmd/posthouse adapts it).
type DKIMVerifier interface {
	VerifyDKIM(ctx context.Context, r io.Reader) ([]DKIMResult, error)
}

// DKIMResult is one signature's outcome: its RFC 8601 §2.7.1 result
// ("pass", "fail", "temperror", "permerror"), the signing domain and
// identity, and why it did not pass.
type DKIMResult struct {
	Result, Domain, Identifier string
	Err                        error
}

// authResults verifies the DKIM signatures of an inbound message and
// renders our Authentication-Results field (RFC 8601), or "" when there is
// nothing to say (submission, or no verifier configured). SPF and DMARC are
// not evaluated (yet): the field says only what we checked.
func (d *accepted) authResults(ctx context.Context, hdr headerInfo) string {
	s := d.s.s
	if s.opts.Mode != ModeMTA || s.opts.DKIM == nil || !hdr.known {
		return ""
	}
	var results []string
	if !hdr.hasDKIM {
		results = append(results, "dkim=none")
	} else {
		verifs, err := s.opts.DKIM.VerifyDKIM(ctx, io.NewSectionReader(d.spool, 0, d.size))
		if err != nil {
			// The header could not be read as a message header.
			d.log.Info("DKIM verification impossible", "err", err)
			results = append(results, "dkim=permerror")
		}
		for _, v := range verifs {
			r := "dkim=" + v.Result
			if v.Domain != "" {
				r += " header.d=" + authresValue(v.Domain)
			}
			if v.Identifier != "" {
				r += " header.i=" + authresValue(v.Identifier)
			}
			results = append(results, r)
			d.log.Debug("DKIM", "result", r, "err", v.Err)
		}
	}
	return "Authentication-Results: " + s.opts.Hostname + ";\r\n\t" + strings.Join(results, ";\r\n\t") + "\r\n"
}

// authresValue keeps a signature-supplied domain or identity usable as an
// RFC 8601 pvalue.
func authresValue(v string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(".-_@+=", r):
			return r
		case r >= 0x80:
			return r
		}
		return -1
	}, v)
}

// forgedAuthResults finds the Authentication-Results fields in the message
// header that claim to come from us (authserv-id equal to hostname): RFC
// 8601 §5 has us remove them, so nobody can pass off their own verdict as
// ours. It returns their byte ranges in the message, in order. Only the
// first maxHeaderBytes are looked at.
func forgedAuthResults(r io.ReaderAt, size int64, hostname string) [][2]int64 {
	n := min(size, maxHeaderBytes)
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil
	}
	var out [][2]int64
	pos := 0
	for pos < len(buf) {
		// One field: a line and its continuation lines.
		start := pos
		end := fieldEnd(buf, pos)
		if end < 0 {
			break
		}
		field := buf[start:end]
		if len(field) == 2 { // the empty line: end of header
			break
		}
		if name, value, ok := bytes.Cut(field, []byte(":")); ok && strings.EqualFold(string(bytes.TrimSpace(name)), "Authentication-Results") {
			id, _, _ := bytes.Cut(value, []byte(";"))
			if fs := strings.Fields(stripComments(string(id))); len(fs) > 0 && strings.EqualFold(fs[0], hostname) {
				out = append(out, [2]int64{int64(start), int64(end)})
			}
		}
		pos = end
	}
	return out
}

// fieldEnd returns the offset after the field starting at pos (CRLF lines,
// continuation lines start with SP or HT), or -1 if it runs past buf.
func fieldEnd(buf []byte, pos int) int {
	for {
		i := bytes.Index(buf[pos:], []byte("\r\n"))
		if i < 0 {
			return -1
		}
		pos += i + 2
		if i == 0 || pos >= len(buf) || (buf[pos] != ' ' && buf[pos] != '\t') {
			return pos
		}
	}
}

// stripComments removes RFC 5322 comments (nested parentheses, with
// backslash quoting) so that "(x) host" cannot hide an authserv-id.
func stripComments(v string) string {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
			b.WriteByte(' ')
		case c == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}
