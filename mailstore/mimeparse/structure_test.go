package mimeparse

import (
	"bufio"
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

// TestSameAsGoIMAP holds the parser to what go-imap's unbounded extractor
// gives for ordinary mail: clients must see no change.
func TestSameAsGoIMAP(t *testing.T) {
	for i, msg := range corpus(500) {
		want := imapserver.ExtractBodyStructure(bytes.NewReader(msg))
		h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg)))
		wantEnv := imapserver.ExtractEnvelope(h)
		root, err := Parse(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		if got := root.BodyStructure(); !reflect.DeepEqual(got, want) {
			t.Errorf("message %d: body structure differs\n got %s\nwant %s\nmessage:\n%s", i, dump(got), dump(want), msg)
			continue
		}
		if !reflect.DeepEqual(root.Envelope, wantEnv) {
			t.Errorf("message %d: envelope differs\n got %#v\nwant %#v", i, root.Envelope, wantEnv)
		}
	}
}

func dump(bs imap.BodyStructure) string {
	var b bytes.Buffer
	var walk func(bs imap.BodyStructure, ind string)
	walk = func(bs imap.BodyStructure, ind string) {
		switch bs := bs.(type) {
		case *imap.BodyStructureMultiPart:
			b.WriteString(ind + "multipart/" + bs.Subtype + " " + fmtAny(bs.Extended) + "\n")
			for _, c := range bs.Children {
				walk(c, ind+"  ")
			}
		case *imap.BodyStructureSinglePart:
			b.WriteString(ind + fmtAny(*bs) + " text=" + fmtAny(bs.Text) + " ext=" + fmtAny(bs.Extended) + "\n")
			if bs.MessageRFC822 != nil {
				b.WriteString(ind + " env=" + fmtAny(bs.MessageRFC822.Envelope) + " lines=" + fmtAny(bs.MessageRFC822.NumLines) + "\n")
				walk(bs.MessageRFC822.BodyStructure, ind+"  ")
			}
		}
	}
	walk(bs, "")
	return b.String()
}

func fmtAny(v any) string { return fmt.Sprintf("%+v", v) }
