package postgres

import (
	"io"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// parsed is what delivery learns from a message's content.
type parsed struct {
	envelope      []byte
	bodyStructure []byte
	messageID     string
	sentDate      int64 // YYYYMMDD, 0 if none
}

// parseMessage extracts and encodes the envelope and body structure of the
// message r holds, reading it once (mimeparse: bounded whatever the
// message). Only read errors fail it: a message the parser cannot make
// sense of is stored with what could be read of it.
func parseMessage(r io.Reader) (p parsed, err error) {
	root, err := mimeparse.Parse(r)
	if err != nil {
		return p, err
	}
	return encodeParsed(root)
}

func encodeParsed(root *mimeparse.Part) (p parsed, err error) {
	env := root.Envelope
	if env == nil {
		env = &imap.Envelope{}
	}
	if p.envelope, err = encodeEnvelope(env); err != nil {
		return p, err
	}
	if p.bodyStructure, err = encodeBodyStructure(root.BodyStructure()); err != nil {
		return p, err
	}
	p.messageID = env.MessageID
	if !env.Date.IsZero() {
		p.sentDate = dateNum(env.Date)
	}
	return p, nil
}
