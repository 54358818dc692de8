package mimeparse

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestHeaderSectionsSkipEnvelope: locating BODY[HEADER.FIELDS (…)] finds
// where the header ends without interpreting its fields (no envelope, no
// content type), and answers the same bytes; the structure still has the
// envelope.
func TestHeaderSectionsSkipEnvelope(t *testing.T) {
	msg := "From: A <a@example.net>\r\nSubject: hello\r\nTo: b@example.org\r\n\r\nbody\r\n"
	m := NewMessage(strings.NewReader(msg), int64(len(msg)))
	sec, err := m.BodySection(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if _, err := sec.WriteTo(&b); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if got, want := b.String(), "Subject: hello\r\n\r\n"; got != want {
		t.Errorf("HEADER.FIELDS (Subject): %q, want %q", got, want)
	}
	if m.head != nil || m.bounds == nil || m.bounds.Envelope != nil || m.bounds.MediaType != "" ||
		m.bounds.BodyStart != int64(strings.Index(msg, "body")) {
		t.Errorf("header parse: head %+v, bounds %+v; want only the bounds, body at %d, fields not read",
			m.head, m.bounds, strings.Index(msg, "body"))
	}
	root, err := m.Structure()
	if err != nil {
		t.Fatal(err)
	}
	if root.Envelope == nil || root.Envelope.Subject != "hello" {
		t.Errorf("structure's envelope: %+v", root.Envelope)
	}
}

// countingReaderAt counts the bytes read through it, and the reads.
type countingReaderAt struct {
	r     io.ReaderAt
	n     int64
	calls int
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	c.calls++
	return n, err
}

func (c *countingReaderAt) Read([]byte) (int, error)       { panic("read at offsets only") }
func (c *countingReaderAt) Seek(int64, int) (int64, error) { panic("read at offsets only") }

// TestHeaderSectionReadsHeader: BODY[HEADER.FIELDS (…)] of a large message
// reads about its header, not the body behind it, and answers the same as
// the whole parse does.
func TestHeaderSectionReadsHeader(t *testing.T) {
	var msg bytes.Buffer
	msg.WriteString("From: A <a@example.net>\r\nSubject: big\r\n")
	for msg.Len() < 6<<10 {
		msg.WriteString("Received: from relay.example.net by mx.example.org; Sat, 5 Dec 2026 07:00:00 +0000\r\n")
	}
	msg.WriteString("To: b@example.org\r\n\r\n")
	header := int64(msg.Len())
	msg.WriteString(strings.Repeat("body line of the message\r\n", 8000))
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"To", "Subject"}}

	cr := &countingReaderAt{r: bytes.NewReader(msg.Bytes())}
	got := sectionString(t, NewMessage(cr, int64(msg.Len())), section)
	if want := "Subject: big\r\nTo: b@example.org\r\n\r\n"; got != want {
		t.Errorf("HEADER.FIELDS (To Subject): %q, want %q", got, want)
	}
	// Parsing reads the header and at most one chunk past it; the section
	// reads the header twice more (its size for the literal, then its
	// bytes).
	if limit := 3*header + headerChunk; cr.n > limit {
		t.Errorf("read %d bytes of a %d-byte message with a %d-byte header, want at most %d", cr.n, msg.Len(), header, limit)
	}
	// The whole parse answers the same.
	whole := NewMessage(bytes.NewReader(msg.Bytes()), int64(msg.Len()))
	if _, err := whole.Structure(); err != nil {
		t.Fatal(err)
	}
	if again := sectionString(t, whole, section); again != got {
		t.Errorf("after the whole parse: %q, want %q", again, got)
	}
}

// TestSmallHeaderReadOnce: a header within the first headerChunk bytes is
// read once, by one ReadAt, for its fields' size and bytes and for
// BODY[HEADER]; BODY[TEXT] then reads the body alone.
func TestSmallHeaderReadOnce(t *testing.T) {
	head := "From: A <a@example.net>\r\nSubject: small\r\nTo: b@example.org\r\n\r\n"
	body := strings.Repeat("body line of the message\r\n", 4000)
	msg := head + body
	cr := &countingReaderAt{r: strings.NewReader(msg)}
	m := NewMessage(cr, int64(len(msg)))
	if got, want := sectionString(t, m, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"subject", "TO"}}),
		"Subject: small\r\nTo: b@example.org\r\n\r\n"; got != want {
		t.Errorf("HEADER.FIELDS (subject TO): %q, want %q", got, want)
	}
	if got := sectionString(t, m, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader}); got != head {
		t.Errorf("HEADER: %q, want %q", got, head)
	}
	if got := sectionString(t, m, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"From"}}); got != "Subject: small\r\nTo: b@example.org\r\n\r\n" {
		t.Errorf("HEADER.FIELDS.NOT (From): %q", got)
	}
	if cr.calls != 1 || cr.n != headerChunk {
		t.Errorf("header sections read %d bytes in %d calls, want %d in 1", cr.n, cr.calls, headerChunk)
	}
	if got := sectionString(t, m, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText}); got != body {
		t.Errorf("TEXT: %d bytes, want %d", len(got), len(body))
	}
	if want := int64(headerChunk + len(body)); cr.n != want {
		t.Errorf("after TEXT: read %d bytes, want %d", cr.n, want)
	}
}

// sectionString is a body section of m, written out.
func sectionString(t *testing.T, m *Message, section *imap.FetchItemBodySection) string {
	t.Helper()
	s, err := m.BodySection(section)
	if err != nil {
		t.Fatalf("BODY[%s]: %v", section.Specifier, err)
	}
	var b strings.Builder
	if _, err := s.WriteTo(&b); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b.String()
}

// TestHeaderChunkBoundaries: a header-only parse reads headerChunk at a
// time; headers that end, or whose lines and terminators fall, on every
// offset around a chunk's end answer as the whole parse does.
func TestHeaderChunkBoundaries(t *testing.T) {
	sections := []*imap.FetchItemBodySection{
		{Specifier: imap.PartSpecifierHeader},
		{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject", "X-Last"}},
		{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Received"}},
		{Specifier: imap.PartSpecifierText},
	}
	for _, chunks := range []int{1, 2} {
		for pad := -40; pad <= 40; pad++ {
			var msg bytes.Buffer
			msg.WriteString("Subject: boundaries\r\n")
			for msg.Len() < chunks*headerChunk+pad-60 {
				msg.WriteString("Received: by relay.example.net;\r\n\tSat, 5 Dec 2026 07:00:00 +0000\r\n")
			}
			msg.WriteString("X-Pad: " + strings.Repeat("p", max(0, chunks*headerChunk+pad-msg.Len()-20)) + "\r\n")
			msg.WriteString("X-Last: end\r\n\r\nthe body\r\n")
			whole := NewMessage(bytes.NewReader(msg.Bytes()), int64(msg.Len()))
			if _, err := whole.Structure(); err != nil {
				t.Fatal(err)
			}
			for _, section := range sections {
				fresh := NewMessage(bytes.NewReader(msg.Bytes()), int64(msg.Len()))
				if got, want := sectionString(t, fresh, section), sectionString(t, whole, section); got != want {
					t.Fatalf("message of %d bytes, %s %v: header-only parse answers %d bytes, the whole parse %d", msg.Len(), section.Specifier, section.HeaderFields, len(got), len(want))
				}
			}
		}
	}
}

// TestFieldFilterNames: field names match whatever their case, long ones
// too (past the filter's on-stack buffer), and a line whose name is not a
// token is never a field (it ends the header: the body starts there).
func TestFieldFilterNames(t *testing.T) {
	long := "X-" + strings.Repeat("Long", 20) // 82 bytes
	msg := "SUBJECT: one\r\n" + long + ": two\r\nx-mixed-CASE: three\r\nTo: five\r\nBad Name: four\r\n\r\nbody\r\n"
	for _, c := range []struct {
		fields []string
		not    bool
		want   string
	}{
		{[]string{"subject"}, false, "SUBJECT: one\r\n\r\n"},
		{[]string{strings.ToUpper(long)}, false, long + ": two\r\n\r\n"},
		{[]string{"X-Mixed-Case", "TO"}, false, "x-mixed-CASE: three\r\nTo: five\r\n\r\n"},
		{[]string{"Bad Name", "Bad"}, false, "\r\n"},
		{[]string{"subject", strings.ToLower(long), "to"}, true, "x-mixed-CASE: three\r\n\r\n"},
	} {
		item := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: c.fields}
		if c.not {
			item = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: c.fields}
		}
		if got := sectionString(t, NewMessage(strings.NewReader(msg), int64(len(msg))), item); got != c.want {
			t.Errorf("fields %q (not %v): %q, want %q", c.fields, c.not, got, c.want)
		}
	}
}

// seekOnly hides a reader's ReadAt, so NewMessage reads it by seeking.
type seekOnly struct{ io.ReadSeeker }

// TestHeaderOfShortMessage: a message shorter than its recorded size (a
// file cut short) still answers its header fields, read by seeking as
// well as at offsets.
func TestHeaderOfShortMessage(t *testing.T) {
	msg := "Subject: cut\r\nTo: b@example.org\r\n\r\nbo"
	item := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}}
	for name, rs := range map[string]io.ReadSeeker{"ReaderAt": strings.NewReader(msg), "Seeker": seekOnly{strings.NewReader(msg)}} {
		if got := sectionString(t, NewMessage(rs, int64(len(msg))+100), item); got != "Subject: cut\r\n\r\n" {
			t.Errorf("%s: %q", name, got)
		}
	}
}
