package delivery

import (
	"bufio"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-message/textproto"
)

// MaxHeaderBytes bounds how much of a message's header is parsed for
// filters (the same bound smtpd uses for its own look at the header). A
// longer header is stored untouched; filters see the fields before the
// bound, with Header.Complete false. (The MIME parser in mailstore will own
// this bound; this constant then points at it.)
const MaxHeaderBytes = 256 << 10

// Recipient is one account a message is delivered to.
type Recipient struct {
	Account string // the mailstore account name
	// Addresses are the envelope recipients that led to it (an alias and
	// a user's own address may both reach one account: one copy).
	Addresses []string
}

// Message is a message as filters see it: its envelope, its recipients,
// its header (parsed once, on first use, bounded) and its body, re-readable
// from the spool. Filters must treat all of it as read-only.
type Message struct {
	Envelope   Envelope
	Recipients []Recipient

	body *io.SectionReader

	headerOnce sync.Once
	header     Header

	// added are the fields the filters so far added for every recipient
	// (their Decision.All headers), in order; see Added.
	added []Field
	// plans are the verdicts composed so far, per recipient; see Planned.
	plans []plan
}

// Planned is what the filters so far decided for one account (see
// Message.Planned).
type Planned struct {
	// Fields are the fields added for the account, for every recipient
	// and for it alone, in the order the stored copy will have them on
	// top (the latest filter's first), less those removed.
	Fields []PlannedField
	// Mailbox and Flags are the copy's so far ("" and nil: INBOX, none).
	Mailbox string
	Flags   []string
	// Rejected or discarded by an earlier filter.
	Action Action
}

// PlannedField is a field filters added. Added is its index in Added()
// when it was added for every recipient (a FieldRef can remove it), -1
// when for this account alone.
type PlannedField struct {
	Field
	Added int
}

// Planned returns what the filters that ran so far decided for account
// (a Recipient's Account): a later filter (Sieve) reads the junk filter's
// field and Junk mailbox from it. The caller must not modify it.
func (m *Message) Planned(account string) Planned {
	for i, r := range m.Recipients {
		if r.Account == account && i < len(m.plans) {
			pl := &m.plans[i]
			return Planned{Fields: pl.topFields(), Mailbox: pl.mailbox, Flags: pl.flags, Action: pl.action}
		}
	}
	return Planned{}
}

// Added returns the fields earlier filters added for every recipient (an
// Authentication-Results, say), in the order they ran: they are stored on
// top of the message, but Header and Body do not show them. Removals
// (Verdict.Remove) show nowhere: Added keeps a field a later filter
// removes, and Header and Body are the message as it came. The caller
// must not modify the slice.
func (m *Message) Added() []Field { return m.added }

// Header is the parsed message header.
type Header struct {
	textproto.Header
	// Complete is false when the header did not end within MaxHeaderBytes
	// or could not be parsed: the fields are those read before that point.
	Complete bool
}

// Size is the message's length in octets.
func (m *Message) Size() int64 { return m.body.Size() }

// Body returns a new reader over the whole message (header and body, with
// the trace fields the caller added; CRLF line endings) at offset 0. It
// reads the spool file: each call costs nothing until read.
func (m *Message) Body() *io.SectionReader { return io.NewSectionReader(m.body, 0, m.body.Size()) }

// Header returns the message header, parsed on the first call.
func (m *Message) Header() *Header {
	m.headerOnce.Do(func() { m.header = parseHeader(m.Body()) })
	return &m.header
}

// maxHeaderLines bounds the lines (fields and their continuations) parsed:
// go-message allocates a buffer per line, so a header of tiny lines would
// otherwise cost dozens of times its size. Real headers have a few
// hundred at most (long Received chains, ARC and DKIM sets).
const maxHeaderLines = 2000

// parseHeader reads at most MaxHeaderBytes and maxHeaderLines of r's
// header (go-message asks its caller to bound the input). What it costs is
// bounded whatever the input: a 1 MiB field, NULs or a million short
// fields cost no more than the bounds' worth of them.
func parseHeader(r *io.SectionReader) Header {
	lr := &boundedReader{r: r, bytes: MaxHeaderBytes, lines: maxHeaderLines}
	br := bufio.NewReaderSize(lr, 4096)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return Header{Header: h}
	}
	// ReadHeader also ends without error at the end of its input, which
	// may be a bound: complete means a blank line or the message's end.
	consumed := lr.read - int64(br.Buffered())
	return Header{Header: h, Complete: consumed == r.Size() || endsWithBlankLine(r, consumed)}
}

// endsWithBlankLine reports whether the n octets at the start of r end
// with an empty line.
func endsWithBlankLine(r io.ReaderAt, n int64) bool {
	var b [3]byte
	k := min(n, 3)
	if _, err := r.ReadAt(b[:k], n-k); err != nil {
		return false
	}
	tail := string(b[:k])
	return tail == "\r\n" && n == 2 || tail == "\n" && n == 1 ||
		strings.HasSuffix(tail, "\n\r\n") || strings.HasSuffix(tail, "\n\n")
}

// boundedReader ends its input after a number of bytes or of lines.
type boundedReader struct {
	r     io.Reader
	bytes int64 // left
	lines int   // left
	read  int64 // handed out
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.bytes <= 0 || b.lines <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.bytes {
		p = p[:b.bytes]
	}
	n, err := b.r.Read(p)
	for i := 0; i < n; i++ {
		if p[i] == '\n' {
			b.lines--
			if b.lines == 0 {
				n = i + 1
				break
			}
		}
	}
	b.bytes -= int64(n)
	b.read += int64(n)
	return n, err
}
