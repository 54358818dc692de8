package mimeparse

import (
	"strings"

	"github.com/emersion/go-imap/v2"
)

// BodyStructure returns the IMAP body structure of the entity, with
// extension data, in the shape go-imap's imapserver.ExtractBodyStructure
// gives for the same message, so clients see the same BODYSTRUCTURE.
// Multiparts always have at least one child, and every node has its
// extension data, so go-imap can write it.
func (pt *Part) BodyStructure() imap.BodyStructure {
	if pt.Kind == KindMultipart {
		_, sub, _ := strings.Cut(pt.MediaType, "/")
		bs := &imap.BodyStructureMultiPart{Subtype: sub}
		for _, c := range pt.Children {
			bs.Children = append(bs.Children, c.BodyStructure())
		}
		bs.Extended = &imap.BodyStructureMultiPartExt{
			Params:      pt.Params,
			Disposition: pt.Disposition,
			Language:    pt.Language,
			Location:    pt.Location,
		}
		return bs
	}
	typ, sub, _ := strings.Cut(pt.MediaType, "/")
	params := pt.Params
	if pt.Kind == KindOpaque {
		typ, sub, params = "application", "octet-stream", nil
	}
	bs := &imap.BodyStructureSinglePart{
		Type:        typ,
		Subtype:     sub,
		Params:      params,
		ID:          pt.ID,
		Description: pt.Description,
		Encoding:    pt.Encoding,
		Size:        uint32(pt.End - pt.BodyStart),
	}
	if pt.Kind == KindMessage {
		bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      pt.Message.envelope(),
			BodyStructure: pt.Message.BodyStructure(),
			NumLines:      pt.Lines,
		}
	}
	if typ == "text" {
		bs.Text = &imap.BodyStructureText{NumLines: pt.Lines}
	}
	bs.Extended = &imap.BodyStructureSinglePartExt{
		Disposition: pt.Disposition,
		Language:    pt.Language,
		Location:    pt.Location,
	}
	return bs
}

func (pt *Part) envelope() *imap.Envelope {
	if pt.Envelope == nil {
		return &imap.Envelope{}
	}
	return pt.Envelope
}
