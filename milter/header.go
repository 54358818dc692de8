package milter

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"github.com/posthouse/posthouse/delivery"
)

// Bounds on the header section as milters see it.
const (
	// maxHeaderBytes: the header section ends here at the latest; what
	// follows goes to the milter as body (the bound filters see too).
	maxHeaderBytes = delivery.MaxHeaderBytes
	// maxFieldBytes bounds one field's value as sent; the rest of a longer
	// field is not sent (like Postfix's header_size_limit, 100 KiB, it
	// keeps one field from taking a whole packet budget: go-milter's
	// server side refuses packets over 1 MiB).
	maxFieldBytes = 64 << 10
	// lineBuf is the reader's buffer: longer lines are read in pieces.
	lineBuf = 4096
)

// scanHeader reads the header section at the start of r and calls fn with
// each field's name and value, in order, as the milter protocol carries
// them (RFC 5322 §2.2 fields): the value without the colon, its folds as
// "\n" followed by the fold's white space (as Sendmail and Postfix send
// them), no final line break, NULs as spaces (the protocol's strings end
// at a NUL), and without its leading white space unless leadSpace (the
// milter negotiated SMFIP_HDR_LEADSPC).
//
// The header ends at an empty line, at the end of the input, at a line
// that is neither a field nor a fold (that line is the body's first, as
// Postfix has it), or after maxHeaderBytes (the rest is body). scanHeader
// returns the body's offset in r. It holds at most one field (bounded by
// maxFieldBytes) in memory, whatever the input.
func scanHeader(r io.Reader, leadSpace bool, fn func(name, value string) error) (body int64, err error) {
	br := bufio.NewReaderSize(r, lineBuf)
	var (
		off   int64  // offset of the current line
		name  []byte // the current field's name; nil: none
		value []byte
		line  []byte // the current line, at most maxFieldBytes of it
	)
	flush := func() error {
		if name == nil {
			return nil
		}
		n, v := string(name), string(value)
		name, value = nil, value[:0]
		return fn(n, v)
	}
	for off < maxHeaderBytes {
		var n int64
		var eof bool
		line, n, eof, err = readLine(br, line[:0])
		if err != nil {
			return 0, err
		}
		if n == 0 { // end of input
			return off, flush()
		}
		content := trimEOL(line, n)
		switch {
		case len(content) == 0:
			// The empty line that ends the header belongs to neither.
			return off + n, flush()
		case content[0] == ' ' || content[0] == '\t':
			if name == nil {
				return off, nil // a fold with no field: the body starts here
			}
			value = appendBounded(value, "\n")
			value = appendBounded(value, content)
		default:
			i := bytes.IndexByte(content, ':')
			if i <= 0 || !validName(bytes.TrimRight(content[:i], " \t")) {
				return off, flush()
			}
			if err := flush(); err != nil {
				return 0, err
			}
			name = append([]byte(nil), bytes.TrimRight(content[:i], " \t")...)
			value = appendBounded(value[:0], content[i+1:])
			if !leadSpace {
				value = bytes.TrimLeft(value, " \t")
			}
		}
		off += n
		if eof {
			return off, flush()
		}
	}
	return off, flush()
}

// readLine reads one line, through its LF, into buf (at most
// maxFieldBytes of it are kept) and returns how many octets it had in
// all. n is 0 at the end of the input; eof reports a last line without
// LF.
func readLine(br *bufio.Reader, buf []byte) (line []byte, n int64, eof bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		n += int64(len(chunk))
		if room := maxFieldBytes - len(buf); room > 0 {
			buf = append(buf, chunk[:min(room, len(chunk))]...)
		}
		switch {
		case err == nil:
			return buf, n, false, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return buf, n, n > 0, nil
		default:
			return nil, 0, false, err
		}
	}
}

// trimEOL returns the line without its CRLF or LF. A line cut at
// maxFieldBytes has none to trim.
func trimEOL(line []byte, n int64) []byte {
	if int64(len(line)) < n {
		return line
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

// appendBounded appends s to v, keeping v within maxFieldBytes, with NUL
// turned into a space.
func appendBounded[T string | []byte](v []byte, s T) []byte {
	for i := 0; i < len(s) && len(v) < maxFieldBytes; i++ {
		c := s[i]
		if c == 0 {
			c = ' '
		}
		v = append(v, c)
	}
	return v
}

// validName reports whether b is a field name: printable ASCII without
// a colon (RFC 5322 §2.2, ftext).
func validName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}
