package imapserver

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// Posthouse patch: structures the library used to panic on are written as
// valid BODYSTRUCTURE data.
func TestWriteBodyStructureGuards(t *testing.T) {
	for _, tc := range []struct {
		name string
		bs   imap.BodyStructure
		want string
	}{
		{"nil", nil, `("text" "plain" NIL NIL NIL "7bit" 0 0 NIL NIL NIL NIL)`},
		{"typed nil single", (*imap.BodyStructureSinglePart)(nil), `("text" "plain" NIL NIL NIL "7bit" 0 0 NIL NIL NIL NIL)`},
		{"typed nil multi", (*imap.BodyStructureMultiPart)(nil), `("text" "plain" NIL NIL NIL "7bit" 0 0 NIL NIL NIL NIL)`},
		{"multipart without children", &imap.BodyStructureMultiPart{Subtype: "mixed"},
			`(("text" "plain" NIL NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" NIL NIL NIL NIL)`},
		{"no extension data", &imap.BodyStructureSinglePart{Type: "image", Subtype: "png", Size: 3},
			`("image" "png" NIL NIL NIL "7bit" 3 NIL NIL NIL NIL)`},
		{"message without structure", &imap.BodyStructureSinglePart{Type: "message", Subtype: "rfc822",
			MessageRFC822: &imap.BodyStructureMessageRFC822{NumLines: 1}},
			`("message" "rfc822" NIL NIL NIL "7bit" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" NIL NIL NIL "7bit" 0 0 NIL NIL NIL NIL) 1 NIL NIL NIL NIL)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			bw := bufio.NewWriter(&b)
			enc := imapwire.NewEncoder(bw, imapwire.ConnSideServer)
			writeBodyStructure(enc, tc.bs, true)
			bw.Flush()
			if got := b.String(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
