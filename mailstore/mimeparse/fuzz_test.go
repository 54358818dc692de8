package mimeparse

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// FuzzParse parses arbitrary messages: the structure always satisfies the
// invariants go-imap and clients rely on, and every section of it can be
// located and written with exactly its announced length.
func FuzzParse(f *testing.F) {
	for _, m := range handMessages {
		f.Add([]byte(m))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		root, err := Parse(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		checkTree(t, root, int64(len(msg)))
		// The header's end as BODY[HEADER…] and BODY[TEXT] locate it,
		// without interpreting the header, is the whole parse's.
		hb, err := NewMessage(bytes.NewReader(msg), int64(len(msg))).headerBounds()
		if err != nil {
			t.Fatal(err)
		}
		if hb.Start != root.Start || hb.BodyStart != root.BodyStart || hb.startNL != root.startNL || hb.End != int64(len(msg)) {
			t.Fatalf("header bounds %d-%d (%d LFs) end %d, whole parse %d-%d (%d LFs)",
				hb.Start, hb.BodyStart, hb.startNL, hb.End, root.Start, root.BodyStart, root.startNL)
		}
		m := NewMessage(bytes.NewReader(msg), int64(len(msg)))
		all := append([][]int{nil}, paths(root.BodyStructure(), nil)...)
		if len(all) > 20 {
			all = all[:20]
		}
		for _, path := range all {
			for _, item := range sectionItems(path) {
				s, err := m.BodySection(item)
				if err != nil {
					t.Fatalf("BODY[%v %s]: %v", path, item.Specifier, err)
				}
				if n, err := s.WriteTo(io.Discard); err != nil || n != s.Size {
					t.Fatalf("BODY[%v %s]: wrote %d of %d: %v", path, item.Specifier, n, s.Size, err)
				}
			}
			s, err := m.BinarySection(path, &imap.SectionPartial{Offset: 1, Size: 50})
			if errors.Is(err, ErrUnknownCTE) {
				continue
			}
			if err != nil {
				t.Fatalf("BINARY[%v]: %v", path, err)
			}
			if n, err := s.WriteTo(io.Discard); err != nil || n != s.Size {
				t.Fatalf("BINARY[%v]: wrote %d of %d: %v", path, n, s.Size, err)
			}
		}
	})
}
