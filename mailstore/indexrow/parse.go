package indexrow

import (
	"io"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// Parsed is what delivery learns from a message's content.
type Parsed struct {
	Envelope      []byte
	BodyStructure []byte
	MessageID     string
	SentDate      int64 // YYYYMMDD, 0 if none
}

// ParseMessage extracts and encodes the envelope and body structure of the
// message r holds, reading it once (mimeparse: bounded whatever the
// message). Only read errors fail it: a message the parser cannot make
// sense of is stored with what could be read of it.
func ParseMessage(r io.Reader) (p Parsed, err error) {
	root, err := mimeparse.Parse(r)
	if err != nil {
		return p, err
	}
	return EncodeParsed(root)
}

func EncodeParsed(root *mimeparse.Part) (p Parsed, err error) {
	env := root.Envelope
	if env == nil {
		env = &imap.Envelope{}
	}
	if p.Envelope, err = EncodeEnvelope(env); err != nil {
		return p, err
	}
	if p.BodyStructure, err = EncodeBodyStructure(root.BodyStructure()); err != nil {
		return p, err
	}
	p.MessageID = env.MessageID
	if !env.Date.IsZero() {
		p.SentDate = DateNum(env.Date)
	}
	return p, nil
}
