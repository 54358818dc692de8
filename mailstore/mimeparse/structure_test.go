package mimeparse

import (
	"bufio"
	"bytes"
	"fmt"
	"mime"
	"reflect"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// TestSameAsGoIMAP holds the parser to what go-imap's unbounded extractor
// gives for ordinary mail: clients must see no change, but for what the
// envelope keeps that go-imap's lost: the subject's and names' own text
// (go-imap decodes them, and its writer encodes them again), and groups.
func TestSameAsGoIMAP(t *testing.T) {
	for i, msg := range corpus(500) {
		want := imapserver.ExtractBodyStructure(bytes.NewReader(msg))
		h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg)))
		wantEnv := imapserver.ExtractEnvelope(h)
		root, err := Parse(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		if got := decodedEnvelopes(t, root.BodyStructure()); !reflect.DeepEqual(got, want) {
			t.Errorf("message %d: body structure differs\n got %s\nwant %s\nmessage:\n%s", i, dump(got), dump(want), msg)
			continue
		}
		if !reflect.DeepEqual(decodedFlat(t, root.Envelope), wantEnv) {
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

// decodedFlat is e as go-imap's extractor gives it: encoded words in the
// subject and names decoded, group markers left out.
func decodedFlat(t *testing.T, e *imap.Envelope) *imap.Envelope {
	dec := mime.WordDecoder{CharsetReader: gomessage.CharsetReader}
	decode := func(s string) string {
		d, err := dec.DecodeHeader(s)
		if err != nil {
			t.Fatalf("decode %q: %v", s, err)
		}
		return d
	}
	flat := func(l []imap.Address) []imap.Address {
		var out []imap.Address
		for _, a := range l {
			if a.Host != "" {
				a.Name = decode(a.Name)
				out = append(out, a)
			}
		}
		return out
	}
	c := *e
	c.Subject = decode(e.Subject)
	c.From, c.Sender, c.ReplyTo = flat(e.From), flat(e.Sender), flat(e.ReplyTo)
	c.To, c.Cc, c.Bcc = flat(e.To), flat(e.Cc), flat(e.Bcc)
	return &c
}

// decodedEnvelopes applies decodedFlat to the envelopes of message/rfc822
// parts in bs.
func decodedEnvelopes(t *testing.T, bs imap.BodyStructure) imap.BodyStructure {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		for _, c := range bs.Children {
			decodedEnvelopes(t, c)
		}
	case *imap.BodyStructureSinglePart:
		if m := bs.MessageRFC822; m != nil {
			m.Envelope = decodedFlat(t, m.Envelope)
			decodedEnvelopes(t, m.BodyStructure)
		}
	}
	return bs
}
