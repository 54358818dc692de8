package mimeparse

import (
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
