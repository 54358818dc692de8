package smtpd

import (
	"bytes"
	"errors"
	"io"
	"strings"
)

// forgedAuthResults finds the Authentication-Results fields in the message
// header that claim to come from us (authserv-id equal to hostname): RFC
// 8601 §5 has us remove them, so nobody can pass off their own verdict as
// ours. It returns their byte ranges in the message, in order. Only the
// first maxHeaderBytes are looked at.
func forgedAuthResults(r io.ReaderAt, size int64, hostname string) [][2]int64 {
	n := min(size, maxHeaderBytes)
	var buf []byte
	if n <= spoolBufSize {
		// The common case: a header (and often the whole message) that
		// fits the copy buffer, borrowed rather than allocated.
		pb := spoolBufs.Get().(*[]byte)
		defer spoolBufs.Put(pb)
		buf = (*pb)[:n]
	} else {
		buf = make([]byte, n)
	}
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
