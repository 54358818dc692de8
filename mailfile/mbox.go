package mailfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// MboxFormat says which ">From " lines are escapes.
type MboxFormat int

const (
	// MboxRD removes one '>' from every line matching ">+From " (mboxrd);
	// on mboxo files it differs only for lines that began ">From " before
	// escaping, which mboxo cannot tell apart anyway.
	MboxRD MboxFormat = iota
	// MboxO removes the '>' from ">From " lines only.
	MboxO
)

// Limits of MboxReader.
const (
	// maxChunk is the longest piece of a line handled at once; a longer
	// line passes through in pieces.
	maxChunk = 64 << 10
	// MaxHeaderBytes bounds the header held in memory to read flags; a
	// longer header is passed through unparsed.
	MaxHeaderBytes = 1 << 20
)

// ErrNotMbox: the input does not start with a "From " line.
var ErrNotMbox = errors.New("mailfile: not an mbox file (no \"From \" line at the start)")

// MboxReader splits an mbox stream into messages (see the package doc).
type MboxReader struct {
	br     *bufio.Reader
	format MboxFormat
	n      int64 // bytes consumed from the input

	started   bool
	sep       []byte // the From_ line starting the next message; nil: none
	heldBlank bool   // an empty line not yet known to be the message's or the separator's
	atStart   bool   // the next chunk starts a line
	prevCR    bool   // the last chunk of an unfinished line ended in '\r'
	err       error  // sticky input error; io.EOF at the end
	cur       *MboxMessage
	buf       []byte // scratch for a converted chunk
}

// NewMboxReader reads r as mbox in the given format.
func NewMboxReader(r io.Reader, format MboxFormat) *MboxReader {
	return &MboxReader{br: bufio.NewReaderSize(r, maxChunk), format: format, atStart: true, buf: make([]byte, 0, maxChunk+2)}
}

// Offset reports how many bytes of the input have been consumed.
func (m *MboxReader) Offset() int64 { return m.n }

// MboxMessage is one message of an mbox. Read gives its bytes: the header
// without the flag fields, then the body, un-escaped, with CRLF line
// endings. Reading stops at the next separator.
type MboxMessage struct {
	r *MboxReader
	// FromLine is the separator line after "From ", without its line end
	// (at most 64 KiB).
	FromLine string
	// Received is the date of the From_ line; zero when it does not parse.
	Received time.Time
	// Date is the Date: field; zero when missing or unparsable.
	Date time.Time
	// Flags from Status, X-Status, X-Keywords and Thunderbird's fields.
	Flags []imap.Flag
	// Deleted: Thunderbird marked the message expunged (X-Mozilla-Status
	// 0x0008) and the folder was not compacted since.
	Deleted bool
	// Labels are Google Takeout's X-Gmail-Labels, in order.
	Labels []string

	out  []byte // what Read hands out next
	done bool   // the message's last line has been read
}

// Next returns the next message, or io.EOF after the last one. The
// previous message's unread bytes are skipped.
func (m *MboxReader) Next() (*MboxMessage, error) {
	if m.cur != nil {
		if _, err := io.Copy(io.Discard, m.cur); err != nil {
			return nil, err
		}
		m.cur = nil
	}
	if !m.started {
		m.started = true
		if err := m.findFirst(); err != nil {
			return nil, err
		}
	}
	if m.sep == nil {
		if m.err != nil && m.err != io.EOF {
			return nil, m.err
		}
		return nil, io.EOF
	}
	msg := &MboxMessage{r: m}
	msg.FromLine = strings.TrimRight(string(m.sep[len("From "):]), "\r\n")
	msg.Received = parseFromLineDate(msg.FromLine)
	m.sep = nil
	m.heldBlank = false
	m.cur = msg
	if err := msg.readHeader(); err != nil {
		return nil, err
	}
	return msg, nil
}

// findFirst skips empty lines at the start and takes the first From_ line.
func (m *MboxReader) findFirst() error {
	for {
		chunk, err := m.readChunk()
		if len(chunk) == 0 && err != nil {
			if err == io.EOF {
				return io.EOF
			}
			return err
		}
		if isBlank(chunk) {
			m.atStart = true
			continue
		}
		if bytes.HasPrefix(chunk, []byte("From ")) && endsLine(chunk, err) {
			m.sep = bytes.Clone(chunk)
			m.atStart = true
			return nil
		}
		return ErrNotMbox
	}
}

// readChunk reads at most maxChunk bytes up to and including a '\n'. The
// chunk is valid until the next call.
func (m *MboxReader) readChunk() ([]byte, error) {
	if m.err != nil {
		return nil, m.err
	}
	chunk, err := m.br.ReadSlice('\n')
	m.n += int64(len(chunk))
	switch {
	case err == bufio.ErrBufferFull:
		err = nil
	case err != nil:
		m.err = err
	}
	return chunk, err
}

// endsLine reports whether chunk is a whole line: it ends in '\n', or the
// input ends after it.
func endsLine(chunk []byte, err error) bool {
	return bytes.HasSuffix(chunk, []byte("\n")) || err == io.EOF
}

func isBlank(chunk []byte) bool {
	return len(chunk) == 1 && chunk[0] == '\n' || len(chunk) == 2 && chunk[0] == '\r' && chunk[1] == '\n'
}

// step reads the next chunk of the message. It returns the bytes to emit
// (valid until the next call), and last when the message has ended (at a
// separator or the end of the input).
func (m *MboxReader) step() (emit []byte, last bool, err error) {
	chunk, rerr := m.readChunk()
	if rerr != nil && rerr != io.EOF {
		return nil, true, rerr
	}
	if len(chunk) == 0 {
		// The end: an empty line held back is the format's, not the
		// message's.
		return nil, true, nil
	}
	lineStart := m.atStart
	m.atStart = bytes.HasSuffix(chunk, []byte("\n"))
	out := m.buf[:0]
	if lineStart {
		if isBlank(chunk) {
			if m.heldBlank {
				out = append(out, '\r', '\n')
			}
			m.heldBlank = true
			m.buf = out
			return out, false, nil
		}
		if bytes.HasPrefix(chunk, []byte("From ")) && endsLine(chunk, rerr) &&
			(m.heldBlank || !parseFromLineDate(strings.TrimRight(string(chunk[len("From "):]), "\r\n")).IsZero()) {
			m.sep = bytes.Clone(chunk)
			m.atStart = true
			return nil, true, nil
		}
		if m.heldBlank {
			out = append(out, '\r', '\n')
			m.heldBlank = false
		}
		chunk = m.unescape(chunk)
	}
	out = appendCRLF(out, chunk, lineStart || !m.prevCR)
	m.prevCR = !m.atStart && len(chunk) > 0 && chunk[len(chunk)-1] == '\r'
	m.buf = out
	return out, false, nil
}

// unescape removes the '>' that escapes a "From " line.
func (m *MboxReader) unescape(line []byte) []byte {
	i := 0
	for i < len(line) && line[i] == '>' {
		i++
	}
	if i == 0 || !bytes.HasPrefix(line[i:], []byte("From ")) {
		return line
	}
	if m.format == MboxO && i != 1 {
		return line
	}
	return line[1:]
}

// appendCRLF appends chunk to out with a final "\n" turned into "\r\n"
// unless a '\r' is before it (in chunk, or at the end of the previous
// chunk when crBefore is false).
func appendCRLF(out, chunk []byte, noCRBefore bool) []byte {
	if !bytes.HasSuffix(chunk, []byte("\n")) {
		return append(out, chunk...)
	}
	body := chunk[:len(chunk)-1]
	switch {
	case len(body) > 0 && body[len(body)-1] == '\r':
	case len(body) == 0 && !noCRBefore:
	default:
		return append(append(out, body...), '\r', '\n')
	}
	return append(out, chunk...)
}

// Read reads the message's bytes.
func (msg *MboxMessage) Read(p []byte) (int, error) {
	for len(msg.out) == 0 {
		if msg.done {
			return 0, io.EOF
		}
		emit, last, err := msg.r.step()
		if err != nil {
			msg.done = true
			return 0, err
		}
		msg.out, msg.done = emit, last
	}
	n := copy(p, msg.out)
	msg.out = msg.out[n:]
	return n, nil
}

// readHeader reads the header (up to the empty line, MaxHeaderBytes at
// most), takes the flag fields out of it and queues the rest for Read.
func (msg *MboxMessage) readHeader() error {
	m := msg.r
	var hdr []byte
	for {
		if len(hdr) > MaxHeaderBytes {
			// Too long to parse: pass it through as it is.
			msg.out = hdr
			return nil
		}
		chunk, rerr := m.readChunk()
		if rerr != nil && rerr != io.EOF {
			return rerr
		}
		if len(chunk) == 0 {
			msg.done = true
			hdr = msg.parseHeader(hdr)
			break
		}
		lineStart := m.atStart
		m.atStart = bytes.HasSuffix(chunk, []byte("\n"))
		if lineStart && isBlank(chunk) {
			hdr = msg.parseHeader(hdr)
			hdr = append(hdr, '\r', '\n')
			break
		}
		if lineStart && bytes.HasPrefix(chunk, []byte("From ")) && endsLine(chunk, rerr) &&
			!parseFromLineDate(strings.TrimRight(string(chunk[len("From "):]), "\r\n")).IsZero() {
			m.sep = bytes.Clone(chunk)
			m.atStart = true
			msg.done = true
			hdr = msg.parseHeader(hdr)
			break
		}
		if lineStart {
			chunk = m.unescape(chunk)
		}
		hdr = appendCRLF(hdr, chunk, lineStart || !m.prevCR)
		m.prevCR = !m.atStart && len(chunk) > 0 && chunk[len(chunk)-1] == '\r'
	}
	msg.out = hdr
	return nil
}

// strippedFields are the mbox writers' flag fields, removed from the message.
var strippedFields = map[string]bool{
	"status": true, "x-status": true, "x-keywords": true, "x-uid": true, "x-imap": true, "x-imapbase": true,
	"x-mozilla-status": true, "x-mozilla-status2": true, "x-mozilla-keys": true,
}

// parseHeader reads the fields mbox writers keep flags in and returns the
// header without them.
func (msg *MboxMessage) parseHeader(hdr []byte) []byte {
	out := make([]byte, 0, len(hdr))
	fields := splitFields(hdr)
	for _, f := range fields {
		name, value, ok := bytes.Cut(f, []byte(":"))
		if !ok {
			out = append(out, f...)
			continue
		}
		key := strings.ToLower(string(bytes.TrimSpace(name)))
		v := unfold(value)
		switch key {
		case "status":
			if strings.Contains(v, "R") {
				msg.addFlag(imap.FlagSeen)
			}
		case "x-status":
			for _, c := range v {
				switch c {
				case 'A':
					msg.addFlag(imap.FlagAnswered)
				case 'F':
					msg.addFlag(imap.FlagFlagged)
				case 'T':
					msg.addFlag(imap.FlagDraft)
				case 'D':
					msg.addFlag(imap.FlagDeleted)
				}
			}
		case "x-keywords", "x-mozilla-keys":
			for _, k := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
				if validKeyword(k) {
					msg.addFlag(imap.Flag(k))
				}
			}
		case "x-mozilla-status":
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 32); err == nil {
				if n&0x1 != 0 {
					msg.addFlag(imap.FlagSeen)
				}
				if n&0x2 != 0 {
					msg.addFlag(imap.FlagAnswered)
				}
				if n&0x4 != 0 {
					msg.addFlag(imap.FlagFlagged)
				}
				if n&0x8 != 0 {
					msg.Deleted = true
				}
				if n&0x1000 != 0 {
					msg.addFlag(imap.Flag("$Forwarded"))
				}
			}
		case "x-gmail-labels":
			msg.Labels = parseLabels(v)
		case "date":
			if t, err := parseHeaderDate(v); err == nil {
				msg.Date = t
			}
		}
		if !strippedFields[key] {
			out = append(out, f...)
		}
	}
	return out
}

func (msg *MboxMessage) addFlag(f imap.Flag) {
	for _, g := range msg.Flags {
		if strings.EqualFold(string(g), string(f)) {
			return
		}
	}
	msg.Flags = append(msg.Flags, f)
}

// splitFields cuts a header into fields, each with its continuation lines
// and line ends.
func splitFields(hdr []byte) [][]byte {
	var fields [][]byte
	start := 0
	for i := 0; i < len(hdr); {
		j := bytes.IndexByte(hdr[i:], '\n')
		if j < 0 {
			j = len(hdr)
		} else {
			j += i + 1
		}
		if i > start && j > i && hdr[i] != ' ' && hdr[i] != '\t' {
			fields = append(fields, hdr[start:i])
			start = i
		}
		i = j
	}
	if start < len(hdr) {
		fields = append(fields, hdr[start:])
	}
	return fields
}

func unfold(v []byte) string {
	s := strings.NewReplacer("\r\n", "", "\n", "").Replace(string(v))
	return strings.TrimSpace(s)
}

// validKeyword reports whether k can be an IMAP keyword (RFC 9051 §9,
// flag-keyword is an atom).
func validKeyword(k string) bool {
	if k == "" || len(k) > 200 || k[0] == '\\' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// parseLabels splits X-Gmail-Labels: comma-separated, a label with a comma
// in double quotes.
func parseLabels(v string) []string {
	var labels []string
	var cur strings.Builder
	quoted := false
	flush := func() {
		if l := strings.TrimSpace(cur.String()); l != "" {
			labels = append(labels, l)
		}
		cur.Reset()
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return labels
}

// fromLineLayouts are the dates mbox writers put after the sender:
// asctime (RFC 4155), with a zone offset (Google Takeout, MboxWriter) or a
// zone name.
var fromLineLayouts = []string{
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan 2 15:04:05 -0700 2006",
	"Mon Jan 2 15:04:05 MST 2006",
	"Mon Jan 2 15:04:05 2006 -0700",
	"Mon Jan 2 15:04 2006",
}

// parseFromLineDate reads the date after the sender of a From_ line
// ("sender date"); zero when there is none.
func parseFromLineDate(line string) time.Time {
	if len(line) > 200 {
		return time.Time{}
	}
	_, date, ok := strings.Cut(strings.TrimLeft(line, " "), " ")
	if !ok {
		return time.Time{}
	}
	date = strings.Join(strings.Fields(date), " ")
	for _, layout := range fromLineLayouts {
		if t, err := time.Parse(layout, date); err == nil {
			return t
		}
	}
	return time.Time{}
}

// headerDateLayouts are the Date: forms of RFC 5322 §3.3 and common
// variants.
var headerDateLayouts = []string{
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST",
	"Mon, 2 Jan 06 15:04:05 -0700",
}

func parseHeaderDate(v string) (time.Time, error) {
	if i := strings.IndexByte(v, '('); i > 0 {
		v = v[:i]
	}
	v = strings.Join(strings.Fields(v), " ")
	for _, layout := range headerDateLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("mailfile: bad date %q", v)
}
