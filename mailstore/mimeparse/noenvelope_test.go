package mimeparse

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestHeaderSectionsSkipEnvelope: locating BODY[HEADER.FIELDS (…)] parses
// the header without building an envelope, and answers the same bytes;
// the structure still has the envelope.
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
	if m.head == nil || m.head.Envelope != nil {
		t.Errorf("header parse: %+v, want a part without envelope", m.head)
	}
	root, err := m.Structure()
	if err != nil {
		t.Fatal(err)
	}
	if root.Envelope == nil || root.Envelope.Subject != "hello" {
		t.Errorf("structure's envelope: %+v", root.Envelope)
	}
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
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
