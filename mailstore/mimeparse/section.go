package mimeparse

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
)

// ErrNotFound is returned for a section path that names no part.
var ErrNotFound = errors.New("mimeparse: no such part")

// ErrUnknownCTE is returned for a BINARY section whose transfer encoding
// is unknown or whose content does not decode (RFC 3516 §4.3).
var ErrUnknownCTE = errors.New("mimeparse: cannot decode the part's transfer encoding")

// Message reads FETCH sections of one stored message. It parses the
// message at most once, and only as far as a request needs (the header
// alone for BODY[HEADER], BODY[TEXT] and BINARY[]); section bytes are
// streamed from the message, never held in memory. A Message is for one
// goroutine.
type Message struct {
	ra   io.ReaderAt
	size int64
	head *Part // the message's own header
	// bounds is where the message's own header ends, when head was not
	// needed (headerBounds).
	bounds *Part
	// pre is the message's header, kept by headerBounds when it fits in
	// the first headerChunk bytes: the sections within it are then
	// written from memory, without reading the message again.
	pre  []byte
	root *Part // the whole structure
}

// NewMessage reads the message of size bytes that rs holds.
func NewMessage(rs io.ReadSeeker, size int64) *Message {
	ra, ok := rs.(io.ReaderAt)
	if !ok {
		ra = &seekReaderAt{rs: rs}
	}
	return &Message{ra: ra, size: size}
}

// seekReaderAt reads at offsets by seeking; sections are read one at a
// time, so no two reads overlap.
type seekReaderAt struct{ rs io.ReadSeeker }

func (s *seekReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if _, err := s.rs.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(s.rs, p)
}

func (m *Message) reader() io.Reader { return io.NewSectionReader(m.ra, 0, m.size) }

// Structure parses the whole message.
func (m *Message) Structure() (*Part, error) {
	if m.root == nil {
		root, err := Parse(m.reader())
		if err != nil {
			return nil, err
		}
		m.root, m.head = root, root
	}
	return m.root, nil
}

// header parses the message's own header; End is the message's end.
func (m *Message) header() (*Part, error) {
	if m.head == nil {
		h, err := parseHeader(m.reader())
		if err != nil {
			return nil, err
		}
		h.End = m.size
		m.head = h
	}
	return m.head, nil
}

// headerBounds locates the message's own header, Start to BodyStart (End
// is the message's end), without reading its fields: what BODY[HEADER…]
// and BODY[TEXT] of the message need.
func (m *Message) headerBounds() (*Part, error) {
	if m.head != nil {
		return m.head, nil
	}
	if m.bounds == nil {
		// One read of the first headerChunk bytes usually holds the
		// whole header: the parse starts from it, and it is kept for
		// the section's bytes (a FETCH of header fields read the
		// message three times: to parse, to count, to write).
		bp := prefixBufs.Get().(*[]byte)
		defer prefixBufs.Put(bp)
		n, err := m.ra.ReadAt((*bp)[:min(m.size, headerChunk)], 0)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			// Short (a message shorter than its size) is not an
			// error here: the parse sees the end, as it always did.
			return nil, err
		}
		pre := (*bp)[:n]
		h, err := parseHeaderBounds(io.MultiReader(bytes.NewReader(pre), io.NewSectionReader(m.ra, int64(n), m.size-int64(n))))
		if err != nil {
			return nil, err
		}
		h.End = m.size
		m.bounds = h
		if h.BodyStart <= int64(n) {
			m.pre = bytes.Clone(pre[:h.BodyStart])
		}
	}
	return m.bounds, nil
}

// prefixBufs hold the first bytes of messages while headerBounds parses
// them.
var prefixBufs = sync.Pool{New: func() any { b := make([]byte, headerChunk); return &b }}

// readAt reads the message at off, from pre when it holds those bytes.
func (m *Message) readAt(p []byte, off int64) (int, error) {
	if off >= 0 && off+int64(len(p)) <= int64(len(m.pre)) {
		return copy(p, m.pre[off:]), nil
	}
	return m.ra.ReadAt(p, off)
}

// rangeReader reads the message's bytes [off, off+n), from pre when it
// holds them.
func (m *Message) rangeReader(off, n int64) io.Reader {
	if off >= 0 && off+n <= int64(len(m.pre)) {
		return bytes.NewReader(m.pre[off : off+n])
	}
	return io.NewSectionReader(m.ra, off, n)
}

// find resolves a section part path as RFC 9051 §6.4.5 (and go-imap)
// read it: "1" of a non-multipart message is its body; each step into a
// message/rfc822 part goes through the message it holds.
func (m *Message) find(path []int) (*Part, error) {
	root, err := m.Structure()
	if err != nil {
		return nil, err
	}
	cur := root
	if cur.Kind != KindMultipart && len(path) > 0 && path[0] == 1 {
		path = path[1:]
	}
	for _, n := range path {
		cur = open(cur)
		if cur.Kind == KindMultipart {
			if n < 1 || n > len(cur.Children) {
				return nil, ErrNotFound
			}
			cur = cur.Children[n-1]
		} else if n != 1 {
			return nil, ErrNotFound
		}
	}
	return cur, nil
}

// open is the message an entity encapsulates, or the entity.
func open(pt *Part) *Part {
	if pt.Kind == KindMessage {
		return pt.Message
	}
	return pt
}

// BodySection locates a BODY[section] (RFC 9051 §6.4.5), with its partial
// range applied.
func (m *Message) BodySection(item *imap.FetchItemBodySection) (*Section, error) {
	var (
		pt  *Part
		err error
	)
	switch {
	case len(item.Part) == 0 && item.Specifier == imap.PartSpecifierNone:
		// BODY[]: the message as stored, nothing to parse.
		pt = &Part{End: m.size}
	case len(item.Part) == 0:
		pt, err = m.headerBounds()
	default:
		pt, err = m.find(item.Part)
		if err == nil && (item.Specifier == imap.PartSpecifierHeader || item.Specifier == imap.PartSpecifierText) {
			pt = open(pt)
		}
	}
	if err != nil {
		return nil, err
	}
	s := &Section{m: m}
	switch item.Specifier {
	case imap.PartSpecifierNone:
		if len(item.Part) == 0 {
			s.add(rawPiece(0, m.size))
		} else {
			s.add(rawPiece(pt.BodyStart, pt.End-pt.BodyStart))
		}
	case imap.PartSpecifierText:
		s.add(rawPiece(pt.BodyStart, pt.End-pt.BodyStart))
	case imap.PartSpecifierHeader, imap.PartSpecifierMIME:
		hdr := rawPiece(pt.Start, pt.BodyStart-pt.Start)
		if len(item.HeaderFields) > 0 || len(item.HeaderFieldsNot) > 0 {
			hdr.filter = newFieldFilter(item.HeaderFields, item.HeaderFieldsNot)
			n, err := copyPiece(io.Discard, m, hdr)
			if err != nil {
				return nil, err
			}
			hdr.n = n
			s.add(hdr)
		} else {
			s.add(hdr)
			s.add(piece{lit: headerEnd(m, hdr.off, hdr.rn)})
		}
	default:
		return nil, fmt.Errorf("mimeparse: unknown section specifier %q", item.Specifier)
	}
	s.partial(item.Partial)
	return s, nil
}

// headerEnd is what a raw header needs to end in a blank line, as a header
// written back by go-message would: nothing for an ordinary header.
func headerEnd(m *Message, off, n int64) []byte {
	var tail [4]byte
	k := int(min(n, 4))
	if k > 0 {
		if _, err := m.readAt(tail[:k], off+n-int64(k)); err != nil {
			return nil
		}
	}
	t := tail[:k]
	switch {
	case bytes.Equal(t, []byte("\r\n")) || bytes.Equal(t, []byte("\n")) ||
		bytes.HasSuffix(t, []byte("\n\r\n")) || bytes.HasSuffix(t, []byte("\n\n")):
		return nil
	case k == 0:
		return []byte("\r\n")
	case t[k-1] == '\n':
		return []byte("\r\n")
	default:
		return []byte("\r\n\r\n")
	}
}

// BinarySection locates a BINARY[part] section (RFC 3516): the part's body
// with its transfer encoding removed (and, for the whole message, its
// header before it). The decoded length is counted by decoding once; the
// bytes are decoded again as they are written.
func (m *Message) BinarySection(part []int, partial *imap.SectionPartial) (*Section, error) {
	var (
		pt  *Part
		err error
	)
	if len(part) == 0 {
		pt, err = m.header()
	} else {
		pt, err = m.find(part)
	}
	if err != nil {
		return nil, err
	}
	s := &Section{m: m}
	if len(part) == 0 {
		s.add(rawPiece(pt.Start, pt.BodyStart-pt.Start))
	}
	body := rawPiece(pt.BodyStart, pt.End-pt.BodyStart)
	if !strings.HasPrefix(pt.MediaType, "multipart/") {
		// RFC 2045 §6.4: a multipart has no encoding of its own.
		switch enc := strings.ToLower(pt.Encoding); enc {
		case "7bit", "8bit", "binary", "":
		case "base64", "quoted-printable":
			body.decode = enc
			if body.n, err = copyPiece(io.Discard, m, body); err != nil {
				return nil, err
			}
		default:
			return nil, ErrUnknownCTE
		}
	}
	s.add(body)
	s.partial(partial)
	return s, nil
}

// BinarySize is BINARY.SIZE[part]: the decoded length of the part.
func (m *Message) BinarySize(part []int) (int64, error) {
	s, err := m.BinarySection(part, nil)
	if err != nil {
		return 0, err
	}
	return s.Size, nil
}

// Section is a located FETCH section: its length, known before the
// literal starts, and a way to write exactly that many bytes.
type Section struct {
	// Size is the number of bytes WriteTo writes.
	Size int64

	m      *Message
	pieces []piece
	total  int64
	skip   int64 // partial offset into the pieces
}

// piece is a range of the message [off, off+rn), raw, header-filtered or
// decoded, or a literal; n is its output length.
type piece struct {
	lit     []byte
	off, rn int64
	n       int64
	filter  *fieldFilter
	decode  string
}

// rawPiece is the range [off, off+n) of the message as it is.
func rawPiece(off, n int64) piece { return piece{off: off, rn: n, n: n} }

func (s *Section) add(p piece) {
	if p.lit != nil {
		p.n = int64(len(p.lit))
	}
	if p.n == 0 {
		return
	}
	s.pieces = append(s.pieces, p)
	s.total += p.n
	s.Size = s.total
}

// partial applies <offset.size> as go-imap does: past the end is empty.
func (s *Section) partial(p *imap.SectionPartial) {
	if p == nil {
		return
	}
	if p.Offset > s.total {
		s.skip, s.Size = s.total, 0
		return
	}
	s.skip = p.Offset
	s.Size = min(p.Offset+p.Size, s.total) - p.Offset
}

// WriteTo writes the section's Size bytes. An error after some bytes were
// written leaves w short: a caller writing a literal must then drop the
// connection.
func (s *Section) WriteTo(w io.Writer) (int64, error) {
	skip, left := s.skip, s.Size
	var written int64
	for _, p := range s.pieces {
		if left == 0 {
			break
		}
		if skip >= p.n {
			skip -= p.n
			continue
		}
		lw := &windowWriter{w: w, skip: skip, left: left}
		if _, err := copyPiece(lw, s.m, p); err != nil && !errors.Is(err, errWindowFull) {
			return written + lw.written, err
		}
		written += lw.written
		left -= lw.written
		skip = 0
	}
	if left > 0 {
		return written, fmt.Errorf("mimeparse: section ended %d bytes short (message changed?)", left)
	}
	return written, nil
}

var errWindowFull = errors.New("window full")

// windowWriter passes on the bytes after skip, up to left, then stops the
// copy.
type windowWriter struct {
	w          io.Writer
	skip, left int64
	written    int64
}

func (ww *windowWriter) Write(b []byte) (int, error) {
	n := len(b)
	if ww.skip > 0 {
		k := min(ww.skip, int64(len(b)))
		b = b[k:]
		ww.skip -= k
	}
	if len(b) == 0 {
		return n, nil
	}
	if int64(len(b)) > ww.left {
		b = b[:ww.left]
	}
	k, err := ww.w.Write(b)
	ww.written += int64(k)
	ww.left -= int64(k)
	if err != nil {
		return 0, err
	}
	if ww.left == 0 {
		return 0, errWindowFull
	}
	return n, nil
}

// srcReader tells read errors of the message from decoding errors.
type srcReader struct {
	r   io.Reader
	err error
}

func (s *srcReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// copyPiece writes piece p of the message to w and returns how many bytes
// it wrote.
func copyPiece(w io.Writer, m *Message, p piece) (int64, error) {
	if p.lit != nil {
		n, err := w.Write(p.lit)
		return int64(n), err
	}
	src := &srcReader{r: m.rangeReader(p.off, p.rn)}
	switch {
	case p.filter != nil:
		return p.filter.copy(w, src)
	case p.decode != "":
		var dec io.Reader
		if p.decode == "base64" {
			dec = base64.NewDecoder(base64.StdEncoding, &spaceToLF{src})
		} else {
			dec = quotedprintable.NewReader(src)
		}
		n, err := io.Copy(w, &errTagger{r: dec})
		var de *decodeError
		if errors.As(err, &de) && src.err == nil {
			return n, fmt.Errorf("%w: %v", ErrUnknownCTE, de.err)
		}
		if src.err != nil {
			return n, src.err
		}
		return n, err
	default:
		buf := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(buf)
		return io.CopyBuffer(w, src, *buf)
	}
}

// copyBufs are the buffers copyPiece copies through: io.Copy allocated
// 32 KiB per section written (three quarters of the bytes allocated by a
// FETCH of message bodies). 64 KiB takes a typical message in one read
// and one write.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// decodeError is an error of the decoder (not of the writer).
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }

type errTagger struct{ r io.Reader }

func (t *errTagger) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		err = &decodeError{err}
	}
	return n, err
}

// spaceToLF turns spaces and tabs into line ends, which the base64
// decoder skips, as go-message does for indented base64 bodies.
type spaceToLF struct{ r io.Reader }

func (s *spaceToLF) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	for i := range p[:n] {
		if p[i] == ' ' || p[i] == '\t' {
			p[i] = '\n'
		}
	}
	return n, err
}

// fieldFilter keeps the header fields named (HEADER.FIELDS) or not named
// (HEADER.FIELDS.NOT), reading the header as a stream of lines: a field is
// its first line and the continuation lines after it. Lines that are not
// fields (no colon, or a name that is not a token) are left out, as
// go-message leaves them out of the header it parses.
type fieldFilter struct {
	names map[string]bool
	not   bool
}

func newFieldFilter(fields, not []string) *fieldFilter {
	f := &fieldFilter{names: map[string]bool{}}
	list := fields
	if len(fields) == 0 {
		list, f.not = not, true
	}
	for _, k := range list {
		f.names[strings.ToLower(k)] = true
	}
	return f
}

func (f *fieldFilter) keep(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return false
	}
	key := bytes.Trim(line[:i], " \t")
	if len(key) == 0 {
		return false
	}
	for _, c := range key {
		if c < 33 || c > 126 {
			return false
		}
	}
	// Lower-cased in a buffer on the stack: the map lookup of
	// string(lower) does not allocate, strings.ToLower did for every
	// field of every header filtered.
	var buf [64]byte
	if len(key) > len(buf) {
		return f.names[strings.ToLower(string(key))] != f.not
	}
	lower := buf[:len(key)]
	for i, c := range key {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	return f.names[string(lower)] != f.not
}

// copy writes the kept fields of the header src holds, then the blank line
// that ends a header.
func (f *fieldFilter) copy(w io.Writer, src io.Reader) (int64, error) {
	br := getHeaderReader(src)
	defer putHeaderReader(br)
	var n int64
	keep, atStart := false, true
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if atStart {
				c := line[0]
				if err == nil && (len(line) == 1 || (len(line) == 2 && c == '\r')) {
					break // the blank line
				}
				if c != ' ' && c != '\t' {
					keep = f.keep(line)
				}
			}
			if keep {
				k, werr := w.Write(line)
				n += int64(k)
				if werr != nil {
					return n, werr
				}
			}
			atStart = err == nil
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if keep && !atStart {
				// A kept field at the end of input gets its line end.
				k, werr := w.Write([]byte("\r\n"))
				n += int64(k)
				if werr != nil {
					return n, werr
				}
			}
			break
		}
		if err != nil {
			return n, err
		}
	}
	k, err := w.Write([]byte("\r\n"))
	return n + int64(k), err
}
