package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// maxHeaderBytes bounds how much of a message is read as its header by a
// header search; go-message asks its callers to bound input.
const maxHeaderBytes = 1 << 20

// Cached envelopes and body structures are stored as a version byte followed
// by JSON of the types below. imap.BodyStructure is an interface, so the
// tree is mirrored by cachedPart, which says which concrete type each node
// is. Maps and slices keep nil apart from empty (JSON null vs {} / []), so a
// value decodes to exactly what was encoded.
const cacheVersion = '1'

type cachedEnvelope struct {
	Date      *time.Time     `json:"d,omitempty"`
	Subject   string         `json:"s,omitempty"`
	From      []imap.Address `json:"f"`
	Sender    []imap.Address `json:"se"`
	ReplyTo   []imap.Address `json:"r"`
	To        []imap.Address `json:"t"`
	Cc        []imap.Address `json:"c"`
	Bcc       []imap.Address `json:"b"`
	InReplyTo []string       `json:"i"`
	MessageID string         `json:"m,omitempty"`
}

type cachedDisposition struct {
	Value  string            `json:"v"`
	Params map[string]string `json:"p"`
}

type cachedPart struct {
	Multi bool `json:"mp,omitempty"`

	// Single part.
	Type        string            `json:"t,omitempty"`
	Subtype     string            `json:"st,omitempty"`
	Params      map[string]string `json:"p"`
	ID          string            `json:"id,omitempty"`
	Description string            `json:"ds,omitempty"`
	Encoding    string            `json:"e,omitempty"`
	Size        uint32            `json:"sz,omitempty"`
	Message     *cachedMessage    `json:"msg,omitempty"`
	TextLines   *int64            `json:"tl,omitempty"`

	// Multipart.
	Children []*cachedPart `json:"c,omitempty"`

	// Extension data of either kind; HasExt says Extended was non-nil.
	HasExt      bool               `json:"x,omitempty"`
	ExtParams   map[string]string  `json:"xp"`
	Disposition *cachedDisposition `json:"xd,omitempty"`
	Language    []string           `json:"xl"`
	Location    string             `json:"xo,omitempty"`
}

type cachedMessage struct {
	Envelope      *cachedEnvelope `json:"e"`
	BodyStructure *cachedPart     `json:"b"`
	NumLines      int64           `json:"n"`
}

func toCachedEnvelope(e *imap.Envelope) *cachedEnvelope {
	if e == nil {
		return nil
	}
	c := &cachedEnvelope{
		Subject: e.Subject, From: e.From, Sender: e.Sender, ReplyTo: e.ReplyTo,
		To: e.To, Cc: e.Cc, Bcc: e.Bcc, InReplyTo: e.InReplyTo, MessageID: e.MessageID,
	}
	if !e.Date.IsZero() {
		d := e.Date
		c.Date = &d
	}
	return c
}

func fromCachedEnvelope(c *cachedEnvelope) *imap.Envelope {
	if c == nil {
		return nil
	}
	e := &imap.Envelope{
		Subject: c.Subject, From: c.From, Sender: c.Sender, ReplyTo: c.ReplyTo,
		To: c.To, Cc: c.Cc, Bcc: c.Bcc, InReplyTo: c.InReplyTo, MessageID: c.MessageID,
	}
	if c.Date != nil {
		e.Date = *c.Date
	}
	return e
}

func toCachedDisposition(d *imap.BodyStructureDisposition) *cachedDisposition {
	if d == nil {
		return nil
	}
	return &cachedDisposition{Value: d.Value, Params: d.Params}
}

func fromCachedDisposition(d *cachedDisposition) *imap.BodyStructureDisposition {
	if d == nil {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: d.Value, Params: d.Params}
}

// maxCacheDepth bounds nesting on both encode and decode.
const maxCacheDepth = 64

var errCacheDepth = errors.New("body structure nested too deeply")

func toCachedPart(bs imap.BodyStructure, depth int) (*cachedPart, error) {
	if depth > maxCacheDepth {
		return nil, errCacheDepth
	}
	switch bs := bs.(type) {
	case nil:
		return nil, nil
	case *imap.BodyStructureSinglePart:
		if bs == nil {
			return nil, nil
		}
		p := &cachedPart{
			Type: bs.Type, Subtype: bs.Subtype, Params: bs.Params, ID: bs.ID,
			Description: bs.Description, Encoding: bs.Encoding, Size: bs.Size,
		}
		if m := bs.MessageRFC822; m != nil {
			child, err := toCachedPart(m.BodyStructure, depth+1)
			if err != nil {
				return nil, err
			}
			p.Message = &cachedMessage{Envelope: toCachedEnvelope(m.Envelope), BodyStructure: child, NumLines: m.NumLines}
		}
		if bs.Text != nil {
			n := bs.Text.NumLines
			p.TextLines = &n
		}
		if x := bs.Extended; x != nil {
			p.HasExt = true
			p.Disposition = toCachedDisposition(x.Disposition)
			p.Language = x.Language
			p.Location = x.Location
		}
		return p, nil
	case *imap.BodyStructureMultiPart:
		if bs == nil {
			return nil, nil
		}
		p := &cachedPart{Multi: true, Subtype: bs.Subtype}
		for _, c := range bs.Children {
			cp, err := toCachedPart(c, depth+1)
			if err != nil {
				return nil, err
			}
			p.Children = append(p.Children, cp)
		}
		if x := bs.Extended; x != nil {
			p.HasExt = true
			p.ExtParams = x.Params
			p.Disposition = toCachedDisposition(x.Disposition)
			p.Language = x.Language
			p.Location = x.Location
		}
		return p, nil
	default:
		return nil, fmt.Errorf("unknown body structure type %T", bs)
	}
}

func fromCachedPart(p *cachedPart, depth int) (imap.BodyStructure, error) {
	if p == nil {
		return nil, nil
	}
	if depth > maxCacheDepth {
		return nil, errCacheDepth
	}
	if p.Multi {
		bs := &imap.BodyStructureMultiPart{Subtype: p.Subtype}
		for _, c := range p.Children {
			child, err := fromCachedPart(c, depth+1)
			if err != nil {
				return nil, err
			}
			if child == nil {
				return nil, errors.New("nil body part")
			}
			bs.Children = append(bs.Children, child)
		}
		if p.HasExt {
			bs.Extended = &imap.BodyStructureMultiPartExt{
				Params: p.ExtParams, Disposition: fromCachedDisposition(p.Disposition),
				Language: p.Language, Location: p.Location,
			}
		}
		return bs, nil
	}
	bs := &imap.BodyStructureSinglePart{
		Type: p.Type, Subtype: p.Subtype, Params: p.Params, ID: p.ID,
		Description: p.Description, Encoding: p.Encoding, Size: p.Size,
	}
	if m := p.Message; m != nil {
		child, err := fromCachedPart(m.BodyStructure, depth+1)
		if err != nil {
			return nil, err
		}
		bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope: fromCachedEnvelope(m.Envelope), BodyStructure: child, NumLines: m.NumLines,
		}
	}
	if p.TextLines != nil {
		bs.Text = &imap.BodyStructureText{NumLines: *p.TextLines}
	}
	if p.HasExt {
		bs.Extended = &imap.BodyStructureSinglePartExt{
			Disposition: fromCachedDisposition(p.Disposition), Language: p.Language, Location: p.Location,
		}
	}
	return bs, nil
}

// encodeEnvelope serializes an envelope for the index.
func encodeEnvelope(e *imap.Envelope) ([]byte, error) {
	b, err := json.Marshal(toCachedEnvelope(e))
	if err != nil {
		return nil, err
	}
	return append([]byte{cacheVersion}, b...), nil
}

func decodeEnvelope(b []byte) (*imap.Envelope, error) {
	if len(b) == 0 || b[0] != cacheVersion {
		return nil, errors.New("unknown envelope encoding")
	}
	var c *cachedEnvelope
	if err := json.Unmarshal(b[1:], &c); err != nil {
		return nil, err
	}
	return fromCachedEnvelope(c), nil
}

func encodeBodyStructure(bs imap.BodyStructure) ([]byte, error) {
	p, err := toCachedPart(bs, 0)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return append([]byte{cacheVersion}, b...), nil
}

func decodeBodyStructure(b []byte) (imap.BodyStructure, error) {
	if len(b) == 0 || b[0] != cacheVersion {
		return nil, errors.New("unknown body structure encoding")
	}
	var p *cachedPart
	if err := json.Unmarshal(b[1:], &p); err != nil {
		return nil, err
	}
	return fromCachedPart(p, 0)
}

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

// dateNum is t's calendar date in t's own zone as YYYYMMDD; IMAP date
// searches ignore time and zone (RFC 9051 §6.4.4).
func dateNum(t time.Time) int64 {
	y, m, d := t.Date()
	return int64(y)*10000 + int64(m)*100 + int64(d)
}
