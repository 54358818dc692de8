package mimeparse

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 encoded words in envelopes
	"github.com/emersion/go-message/textproto"
)

// Limits. They are part of what clients see (see the package doc).
const (
	// MaxHeaderBytes is how much of one header is parsed: the fields that
	// start in its first MaxHeaderBytes bytes (cut at the last line end).
	// The rest of the header stays in the message and in BODY[HEADER],
	// but no field of it is interpreted. smtpd applies the same rule
	// (ReadHeader), so delivery and APPEND see the same fields.
	MaxHeaderBytes = 256 << 10

	// MaxDepth is the deepest nesting of multipart and message/* entities
	// that is looked into: the message is at depth 0, its parts (or the
	// message a message/rfc822 body holds) at depth 1, and so on. A
	// multipart or message/* entity at MaxDepth is an opaque leaf.
	MaxDepth = 32

	// MaxParts is how many entities (the message itself, every part, every
	// encapsulated message) one structure holds. Parts past it are folded
	// into the enclosing entity: their bytes stay in its body but they are
	// not listed. A multipart or message/* entity that would have no room
	// for a child is an opaque leaf.
	MaxParts = 2000

	// MaxTotalHeaderBytes bounds the header bytes parsed for one message
	// over all its entities; parts that start once it is spent are folded
	// as past MaxParts, and a header that crosses it is cut there.
	MaxTotalHeaderBytes = 1 << 20

	// MaxBoundaryLen is the longest multipart boundary honoured (RFC 2046
	// §5.1.1 allows 70). A multipart with a longer, empty or missing
	// boundary has no parts.
	MaxBoundaryLen = 200

	// maxPadding is how much transport padding (RFC 2046 §5.1.1: spaces
	// and tabs) may follow a delimiter.
	maxPadding = 256

	// lookahead is how many bytes the parser wants buffered at each line
	// start to recognise any delimiter line.
	lookahead = 2 + MaxBoundaryLen + maxPadding + 2

	bufSize = 32 << 10

	// headerChunk is the most a header-only parse reads at once. A
	// header is a few KB: reading bufSize to find its end copied up to
	// 32 KB of body for every message of a FETCH BODY[HEADER.FIELDS (…)],
	// a quarter of what parsing its header cost.
	headerChunk = 4 << 10
)

// Kind says how an entity's body was parsed.
type Kind uint8

const (
	// KindLeaf is a body that is not looked into (text, images, ...).
	KindLeaf Kind = iota
	// KindMultipart holds Children.
	KindMultipart
	// KindMessage is message/rfc822 or message/global and holds Message.
	KindMessage
	// KindOpaque is a multipart or message/* entity past MaxDepth or
	// MaxParts: its body is not looked into and its structure says
	// application/octet-stream.
	KindOpaque
)

// Part is one entity of a message: the message itself, a part of a
// multipart, or the message a message/rfc822 part encapsulates. Its header
// is [Start, BodyStart) and its body [BodyStart, End), as byte offsets in
// the message.
type Part struct {
	Start, BodyStart, End int64
	// Lines is the number of LF in the body.
	Lines int64

	Kind Kind

	// MediaType, Params and the fields below are what the header says,
	// as go-message reads them (MediaType is "text/plain" for a header
	// without Content-Type).
	MediaType   string
	Params      map[string]string
	ID          string
	Description string
	Encoding    string
	Disposition *imap.BodyStructureDisposition
	Language    []string
	Location    string

	// Envelope is set on the message and on encapsulated messages.
	Envelope *imap.Envelope

	Children []*Part // KindMultipart
	Message  *Part   // KindMessage

	// HeaderCut says the header was longer than what was parsed of it.
	HeaderCut bool

	header  textproto.Header // the parsed header, for ReadHeader
	startNL int64            // LFs before BodyStart
	endNL   int64            // LFs before End
}

// Parse reads a whole message once, as a stream, and returns its structure.
// Memory is bounded by the limits above whatever r holds; time is linear in
// its size. The only errors are r's.
func Parse(r io.Reader) (*Part, error) {
	p := newParser(r, false)
	return p.run()
}

// parseHeader parses only the message's own header, for locating its
// sections: the root's End and Lines are not known, and it has no
// Envelope.
func parseHeader(r io.Reader) (*Part, error) {
	p := newParser(r, true)
	p.noEnvelope = true
	return p.run()
}

// parseHeaderBounds finds where the message's own header ends, without
// reading its fields: only the root's Start, BodyStart and startNL are
// set.
func parseHeaderBounds(r io.Reader) (*Part, error) {
	p := newParser(r, true)
	p.boundsOnly = true // returns before any envelope is built
	return p.run()
}

// phase of a frame.
type phase uint8

const (
	inHeader phase = iota
	inBody
)

// frame is an open entity on the parser's stack.
type frame struct {
	part  *Part // nil for a folded entity (not recorded)
	depth int
	phase phase

	// Header phase.
	malformed bool // a malformed line ends the header after its continuations
	first     bool // no header line seen yet
	message   bool // an encapsulated message or the root: wants an envelope
	digest    bool // a part of multipart/digest: no Content-Type means message/rfc822

	// Multipart body.
	boundary []byte // "--" + boundary; nil when the frame takes no delimiters
	closed   bool   // close delimiter seen: the rest is epilogue
}

type parser struct {
	r          io.Reader
	buf        []byte
	r0, w      int
	off        int64 // offset of buf[r0]
	nl         int64 // LFs before off
	prevTerm   int64 // length of the line terminator before off (0, 1 or 2)
	eof        bool
	err        error
	lineLen    int64              // bytes of the current line consumed so far
	trail      [MaxDepth + 1]int8 // terminators of the last line and the empty lines after it
	trailN     int
	headerOnly bool
	keepHeader bool // keep the root's parsed header
	// noEnvelope: the caller locates sections only and reads no
	// envelope (Message.header): building one was two thirds of what
	// parsing a header for FETCH BODY[HEADER.FIELDS (…)] cost.
	noEnvelope bool
	// boundsOnly: the caller needs where the root's header ends, not
	// its fields (BODY[HEADER.FIELDS (…)], BODY[HEADER], BODY[TEXT]):
	// they are neither kept nor interpreted. Interpreting them (go-message
	// reading every field, Content-Type and its parameters) was most of
	// the allocations and time of locating such a section.
	boundsOnly bool

	stack   []*frame
	sink    frame         // the frame of folded parts
	hr      bytes.Reader  // reused to parse headers
	hbr     *bufio.Reader // over hr
	hbuf    []byte        // header bytes of the entity in header phase
	hcap    int           // how many header bytes this entity may parse
	hcut    bool          // the header had more bytes than hcap
	parts   int
	hbudget int
	root    *Part
	done    bool
}

// bufs holds read buffers between parses: FETCH of headers parses one
// message after another.
var bufs = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// headerReaders holds the 4 KiB readers headers are parsed through, between
// parses and between header copies (fieldFilter).
var headerReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

func getHeaderReader(r io.Reader) *bufio.Reader {
	br := headerReaders.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putHeaderReader(br *bufio.Reader) {
	br.Reset(nil)
	headerReaders.Put(br)
}

func newParser(r io.Reader, headerOnly bool) *parser {
	return &parser{r: r, headerOnly: headerOnly, hbudget: MaxTotalHeaderBytes}
}

func (p *parser) run() (*Part, error) {
	bp := bufs.Get().(*[]byte)
	p.buf = *bp
	defer func() {
		p.buf = nil
		bufs.Put(bp)
		if p.hbr != nil {
			putHeaderReader(p.hbr)
			p.hbr = nil
		}
	}()
	p.root = p.newPart(0)
	p.push(&frame{part: p.root, depth: 0, first: true, message: true})
	for !p.done {
		p.fill()
		if p.r0 == p.w {
			break
		}
		if p.delimiter() {
			continue
		}
		top := p.stack[len(p.stack)-1]
		if top.phase == inHeader {
			p.headerLine(top)
			continue
		}
		p.skipLine()
	}
	if p.err != nil {
		return nil, p.err
	}
	if !p.done {
		p.closeEOF()
	}
	return p.root, nil
}

// fill makes sure lookahead bytes are buffered, unless the input ends first.
func (p *parser) fill() {
	if p.w-p.r0 >= lookahead || p.eof {
		return
	}
	if p.r0 > 0 {
		n := copy(p.buf, p.buf[p.r0:p.w])
		p.r0, p.w = 0, n
	}
	for p.w-p.r0 < lookahead && !p.eof {
		n, err := p.r.Read(p.space(p.w))
		p.w += n
		if err != nil {
			p.eof = true
			if err != io.EOF {
				p.err = err
				p.done = true
			}
		}
	}
}

// space is the part of the buffer from from on that one read may fill.
func (p *parser) space(from int) []byte {
	end := len(p.buf)
	if p.headerOnly {
		end = min(end, from+headerChunk)
	}
	return p.buf[from:end]
}

// more reads at least one more byte when the buffer is empty; it returns
// false at the end of input.
func (p *parser) more() bool {
	if p.r0 < p.w {
		return true
	}
	p.r0, p.w = 0, 0
	for !p.eof {
		n, err := p.r.Read(p.space(0))
		p.w = n
		if err != nil {
			p.eof = true
			if err != io.EOF {
				p.err = err
				p.done = true
				return false
			}
		}
		if n > 0 {
			return true
		}
	}
	return false
}

// advance consumes n buffered bytes; with term > 0 they end the current
// line, whose terminator ("\n" or "\r\n") is term bytes long.
func (p *parser) advance(n int, term int64) {
	p.r0 += n
	p.off += int64(n)
	p.lineLen += int64(n)
	if term == 0 {
		return
	}
	p.nl++
	p.prevTerm = term
	// Remember the terminators at the end of what was read, for
	// closeEOF: the last line's, then one per empty line after it.
	if p.lineLen == term && p.trailN > 0 {
		if p.trailN < len(p.trail) {
			p.trail[p.trailN] = int8(term)
			p.trailN++
		}
	} else {
		p.trail[0], p.trailN = int8(term), 1
	}
	p.lineLen = 0
}

// skipLine consumes the rest of the current line, in chunks, calling fn
// (if not nil) on each chunk. A CR that ends one chunk and is followed by
// the LF in the next counts as a CRLF terminator.
func (p *parser) skipLine() {
	p.eachChunk(nil)
}

func (p *parser) eachChunk(fn func([]byte)) {
	lastCR := false
	for p.more() {
		b := p.buf[p.r0:p.w]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			if fn != nil {
				fn(b[:i+1])
			}
			term := int64(1)
			if (i >= 1 && b[i-1] == '\r') || (i == 0 && lastCR) {
				term = 2
			}
			p.advance(i+1, term)
			return
		}
		if fn != nil {
			fn(b)
		}
		lastCR = b[len(b)-1] == '\r'
		p.advance(len(b), 0)
	}
}

// delimiter recognises a delimiter line of an open multipart at the
// current line start (RFC 2046 §5.1.1): "--" boundary, then "--" for the
// close delimiter, or transport padding and the line end. The outermost
// multipart whose boundary matches wins: an inner part cannot hide its
// parent's delimiter. The CRLF before the delimiter belongs to it.
func (p *parser) delimiter() bool {
	b := p.buf[p.r0:p.w]
	if len(b) < 2 || b[0] != '-' || b[1] != '-' {
		return false
	}
	for i, f := range p.stack {
		if f.boundary == nil || f.closed || !bytes.HasPrefix(b, f.boundary) {
			continue
		}
		rest := b[len(f.boundary):]
		closeDelim := bytes.HasPrefix(rest, []byte("--"))
		lineLen := -1
		if !closeDelim {
			j := 0
			for j < len(rest) && j < maxPadding && (rest[j] == ' ' || rest[j] == '\t') {
				j++
			}
			switch {
			case j == len(rest) && p.eof:
				// "--boundary" at the end of input: nothing follows,
				// so it closes.
				closeDelim = true
			case j < len(rest) && rest[j] == '\n':
				lineLen = len(f.boundary) + j + 1
			case j+1 < len(rest) && rest[j] == '\r' && rest[j+1] == '\n':
				lineLen = len(f.boundary) + j + 2
			default:
				continue // "--boundaryX": not this boundary
			}
		}
		// Entities inside f's current part end before the CRLF.
		end, endNL := p.off-p.prevTerm, p.nl-1
		if p.prevTerm == 0 {
			end, endNL = p.off, p.nl
		}
		p.closeFrom(i+1, end, endNL)
		if closeDelim {
			f.closed = true
			p.skipLine()
			return true
		}
		term := int64(1)
		if p.buf[p.r0+lineLen-2] == '\r' {
			term = 2
		}
		p.advance(lineLen, term)
		p.startChild(f)
		return true
	}
	return false
}

// closeFrom closes the frames from stack index i up, innermost first,
// with their bodies ending at end (which has endNL LFs before it).
func (p *parser) closeFrom(i int, end, endNL int64) {
	for len(p.stack) > i {
		p.closeTop(end, endNL)
	}
}

// closeEOF closes every frame at the end of input. A part of a multipart
// that never got its close delimiter ends before the input's last line
// end, as if the delimiter followed (this is also what go-message does).
func (p *parser) closeEOF() {
	n := len(p.stack)
	ends := make([]int64, n)
	nls := make([]int64, n)
	e, enl := p.off, p.nl
	t := p.trailN
	if p.lineLen > 0 {
		t = 0 // the input ends inside a line
	}
	for i, f := range p.stack {
		ends[i], nls[i] = e, enl
		if f.boundary != nil && !f.closed && i+1 < n && t > 0 {
			t--
			e, enl = e-int64(p.trail[t]), enl-1
		}
	}
	for len(p.stack) > 0 {
		j := min(len(p.stack), n) - 1
		p.closeTop(ends[j], nls[j])
	}
}

// closeTop closes the innermost frame, its body ending at end.
func (p *parser) closeTop(end, endNL int64) {
	f := p.stack[len(p.stack)-1]
	if f.phase == inHeader {
		// The header never ended: what was read is the header and the
		// body is empty. endHeader may push an encapsulated message,
		// which is empty too and closes next.
		at, atNL := max(end, f.part.Start), endNL
		if end < f.part.Start {
			atNL = p.nl
		}
		p.endHeader(f, at, atNL)
		return
	}
	if pt := f.part; pt != nil {
		// A part never ends before what it holds (closeEOF may cut a
		// parent's last delimiter line short of the part it starts).
		var last *Part
		if n := len(pt.Children); n > 0 {
			last = pt.Children[n-1]
		} else if pt.Message != nil {
			last = pt.Message
		}
		if last != nil && last.End > end {
			end, endNL = last.End, last.endNL
		}
		pt.endNL = endNL
		if end > pt.BodyStart {
			pt.End = end
			pt.Lines = max(0, endNL-pt.startNL)
		} else {
			// The line end before the delimiter was the blank line
			// after the header: it belongs to the delimiter.
			pt.BodyStart = max(end, pt.Start)
			pt.End = pt.BodyStart
			pt.Lines = 0
			if m := pt.Message; m != nil {
				// The message it holds is empty and moves with it.
				m.Start, m.BodyStart, m.End = pt.End, pt.End, pt.End
			}
		}
		if pt.Kind == KindMultipart && len(pt.Children) == 0 {
			// RFC 9051 §7.5.2 wants at least one part: an empty
			// multipart shows one empty text/plain part.
			pt.Children = append(pt.Children, &Part{
				Start: pt.End, BodyStart: pt.End, End: pt.End, MediaType: "text/plain",
			})
		}
	}
	p.stack = p.stack[:len(p.stack)-1]
}

func (p *parser) push(f *frame) {
	p.stack = append(p.stack, f)
	if f.phase == inHeader {
		p.hbuf = p.hbuf[:0]
		p.hcap = min(MaxHeaderBytes, p.hbudget)
		if p.boundsOnly {
			p.hcap = 0
		}
		p.hcut = false
	}
}

func (p *parser) newPart(start int64) *Part {
	p.parts++
	return &Part{Start: start, BodyStart: start, End: start}
}

// room says whether another entity can be recorded.
func (p *parser) room() bool {
	return p.parts < MaxParts && p.hbudget > 0
}

// startChild opens the next part of multipart f at the current offset.
func (p *parser) startChild(f *frame) {
	if !p.room() || f.part == nil {
		// Folded: its bytes stay in f's body, unlisted. Only the top
		// frame can be folded, so one frame serves them all.
		p.sink = frame{depth: f.depth + 1, phase: inBody}
		p.push(&p.sink)
		return
	}
	c := p.newPart(p.off)
	f.part.Children = append(f.part.Children, c)
	p.push(&frame{part: c, depth: f.depth + 1, first: true,
		digest: f.part.MediaType == "multipart/digest"})
}

// headerLine consumes one physical line of f's header, following what
// go-message's textproto.ReadHeader accepts: a blank line ends the header;
// a first line that starts with a space, or a field whose name is not a
// token followed by ':', ends it after its continuation lines (and the
// body starts there).
func (p *parser) headerLine(f *frame) {
	b := p.buf[p.r0:p.w]
	c := b[0]
	if f.malformed {
		if c == ' ' || c == '\t' {
			p.eachChunk(p.appendHeader)
			return
		}
		p.endHeader(f, p.off, p.nl)
		return
	}
	if c == '\n' || (c == '\r' && len(b) > 1 && b[1] == '\n') {
		p.skipLine()
		p.endHeader(f, p.off, p.nl)
		return
	}
	if f.first && (c == ' ' || c == '\t') {
		p.eachChunk(nil)
		p.endHeader(f, p.off, p.nl)
		return
	}
	f.first = false
	if c == ' ' || c == '\t' {
		p.eachChunk(p.appendHeader)
		return
	}
	var k keyCheck
	p.eachChunk(func(chunk []byte) {
		k.feed(chunk)
		p.appendHeader(chunk)
	})
	if !k.ok() {
		f.malformed = true
	}
}

func (p *parser) appendHeader(b []byte) {
	room := p.hcap - len(p.hbuf)
	if room < len(b) {
		p.hcut = true
	}
	if room > 0 {
		p.hbuf = append(p.hbuf, b[:min(room, len(b))]...)
	}
}

// keyCheck follows a field's first line up to its colon: the name, with
// spaces or tabs after it, must be made of printable ASCII.
type keyCheck struct {
	done, bad, space bool
}

func (k *keyCheck) feed(b []byte) {
	for _, c := range b {
		if k.done {
			return
		}
		switch {
		case c == ':':
			k.done = true
		case c == ' ' || c == '\t':
			k.space = true
		case c < 33 || c > 126 || k.space:
			k.bad = true
			k.done = true
		}
	}
}

// ok says whether the line was a field (a line without a colon is not).
func (k *keyCheck) ok() bool { return k.done && !k.bad }

// endHeader ends f's header at offset at (with atNL LFs before it), parses
// it, and decides how the body is read.
func (p *parser) endHeader(f *frame, at, atNL int64) {
	pt := f.part
	pt.BodyStart, pt.End, pt.startNL = at, at, atNL
	if p.boundsOnly && f.depth == 0 {
		f.phase, p.done = inBody, true
		return
	}
	hlen := int(at - pt.Start)
	h := p.hbuf
	if p.hcut {
		pt.HeaderCut = true
		// Only whole lines: the field cut in the middle is left out.
		if i := bytes.LastIndexByte(h, '\n'); i >= 0 {
			h = h[:i+1]
		} else {
			h = h[:0]
		}
	}
	p.hbudget -= min(hlen, p.hcap)
	p.hr.Reset(h)
	if p.hbr == nil {
		p.hbr = getHeaderReader(&p.hr)
	} else {
		p.hbr.Reset(&p.hr)
	}
	th := interpret(pt, p.hbr, f.message && !p.noEnvelope, f.digest)
	if p.keepHeader && f.depth == 0 {
		pt.header = th
	}
	f.phase = inBody
	if p.headerOnly && f.depth == 0 {
		p.done = true
		return
	}

	switch {
	case strings.HasPrefix(pt.MediaType, "multipart/"):
		if f.depth >= MaxDepth || p.parts+1 > MaxParts || p.hbudget <= 0 {
			pt.Kind = KindOpaque
			return
		}
		pt.Kind = KindMultipart
		if b := pt.Params["boundary"]; b != "" && len(b) <= MaxBoundaryLen && !strings.ContainsAny(b, "\r\n") {
			f.boundary = []byte("--" + b)
		}
	case pt.MediaType == "message/rfc822" || pt.MediaType == "message/global":
		if f.depth >= MaxDepth || p.parts+1 > MaxParts || p.hbudget <= 0 {
			pt.Kind = KindOpaque
			return
		}
		pt.Kind = KindMessage
		pt.Message = p.newPart(at)
		pt.Message.startNL = atNL
		p.push(&frame{part: pt.Message, depth: f.depth + 1, first: true, message: true})
	}
}

// interpret reads the fields Posthouse uses from a header's bytes, with the
// same go-message and go-imap functions that interpret any other header, so
// values are what clients always saw.
func interpret(pt *Part, br *bufio.Reader, message, digest bool) (th textproto.Header) {
	defer func() {
		// go-message and go-imap are not known to panic on any header,
		// but one odd header must not cost the whole message.
		if recover() != nil {
			pt.MediaType, pt.Params = "text/plain", nil
			if message {
				pt.Envelope = &imap.Envelope{}
			}
		}
	}()
	th, _ = textproto.ReadHeader(br)
	h := gomessage.Header{Header: th}
	if digest && !h.Has("Content-Type") {
		// RFC 2046 §5.1.5.
		pt.MediaType = "message/rfc822"
	} else {
		pt.MediaType, pt.Params, _ = h.ContentType()
	}
	pt.ID = h.Get("Content-Id")
	pt.Description = h.Get("Content-Description")
	pt.Encoding = h.Get("Content-Transfer-Encoding")
	pt.Location = h.Get("Content-Location")
	if disp, params, _ := h.ContentDisposition(); disp != "" {
		pt.Disposition = &imap.BodyStructureDisposition{Value: disp, Params: params}
	}
	if v := h.Get("Content-Language"); v != "" {
		l := strings.Split(v, ",")
		for i, lang := range l {
			l[i] = strings.TrimSpace(lang)
		}
		pt.Language = l
	}
	if message {
		pt.Envelope = envelope(th)
	}
	return th
}
