package indexrow

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
)

// MaxHeaderBytes bounds how much of a message is read as its header by a
// header search; go-message asks its callers to bound input.
const MaxHeaderBytes = 1 << 20

// Cached envelopes and body structures were first stored as a version byte
// (CacheVersion) followed by JSON of the types below, and are now written in
// a compact binary form of the same types (binary.go); both are read. imap.BodyStructure is an interface, so the
// tree is mirrored by CachedPart, which says which concrete type each node
// is. Maps and slices keep nil apart from empty (JSON null vs {} / []), so a
// value decodes to exactly what was encoded.
const CacheVersion = '1'

type CachedEnvelope struct {
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

type CachedDisposition struct {
	Value  string            `json:"v"`
	Params map[string]string `json:"p"`
}

type CachedPart struct {
	Multi bool `json:"mp,omitempty"`

	// Single part.
	Type        string            `json:"t,omitempty"`
	Subtype     string            `json:"st,omitempty"`
	Params      map[string]string `json:"p"`
	ID          string            `json:"id,omitempty"`
	Description string            `json:"ds,omitempty"`
	Encoding    string            `json:"e,omitempty"`
	Size        uint32            `json:"sz,omitempty"`
	Message     *CachedMessage    `json:"msg,omitempty"`
	TextLines   *int64            `json:"tl,omitempty"`

	// Multipart.
	Children []*CachedPart `json:"c,omitempty"`

	// Extension data of either kind; HasExt says Extended was non-nil.
	HasExt      bool               `json:"x,omitempty"`
	ExtParams   map[string]string  `json:"xp"`
	Disposition *CachedDisposition `json:"xd,omitempty"`
	Language    []string           `json:"xl"`
	Location    string             `json:"xo,omitempty"`
}

type CachedMessage struct {
	Envelope      *CachedEnvelope `json:"e"`
	BodyStructure *CachedPart     `json:"b"`
	NumLines      int64           `json:"n"`
}

func ToCachedEnvelope(e *imap.Envelope) *CachedEnvelope {
	if e == nil {
		return nil
	}
	c := &CachedEnvelope{
		Subject: e.Subject, From: e.From, Sender: e.Sender, ReplyTo: e.ReplyTo,
		To: e.To, Cc: e.Cc, Bcc: e.Bcc, InReplyTo: e.InReplyTo, MessageID: e.MessageID,
	}
	if !e.Date.IsZero() {
		d := e.Date
		c.Date = &d
	}
	return c
}

func FromCachedEnvelope(c *CachedEnvelope) *imap.Envelope {
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

func ToCachedDisposition(d *imap.BodyStructureDisposition) *CachedDisposition {
	if d == nil {
		return nil
	}
	return &CachedDisposition{Value: d.Value, Params: d.Params}
}

func FromCachedDisposition(d *CachedDisposition) *imap.BodyStructureDisposition {
	if d == nil {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: d.Value, Params: d.Params}
}

// MaxCacheDepth bounds nesting on both encode and decode.
const MaxCacheDepth = 64

var ErrCacheDepth = errors.New("body structure nested too deeply")

func ToCachedPart(bs imap.BodyStructure, depth int) (*CachedPart, error) {
	if depth > MaxCacheDepth {
		return nil, ErrCacheDepth
	}
	switch bs := bs.(type) {
	case nil:
		return nil, nil
	case *imap.BodyStructureSinglePart:
		if bs == nil {
			return nil, nil
		}
		p := &CachedPart{
			Type: bs.Type, Subtype: bs.Subtype, Params: bs.Params, ID: bs.ID,
			Description: bs.Description, Encoding: bs.Encoding, Size: bs.Size,
		}
		if m := bs.MessageRFC822; m != nil {
			child, err := ToCachedPart(m.BodyStructure, depth+1)
			if err != nil {
				return nil, err
			}
			p.Message = &CachedMessage{Envelope: ToCachedEnvelope(m.Envelope), BodyStructure: child, NumLines: m.NumLines}
		}
		if bs.Text != nil {
			n := bs.Text.NumLines
			p.TextLines = &n
		}
		if x := bs.Extended; x != nil {
			p.HasExt = true
			p.Disposition = ToCachedDisposition(x.Disposition)
			p.Language = x.Language
			p.Location = x.Location
		}
		return p, nil
	case *imap.BodyStructureMultiPart:
		if bs == nil {
			return nil, nil
		}
		p := &CachedPart{Multi: true, Subtype: bs.Subtype}
		for _, c := range bs.Children {
			cp, err := ToCachedPart(c, depth+1)
			if err != nil {
				return nil, err
			}
			p.Children = append(p.Children, cp)
		}
		if x := bs.Extended; x != nil {
			p.HasExt = true
			p.ExtParams = x.Params
			p.Disposition = ToCachedDisposition(x.Disposition)
			p.Language = x.Language
			p.Location = x.Location
		}
		return p, nil
	default:
		return nil, fmt.Errorf("unknown body structure type %T", bs)
	}
}

func FromCachedPart(p *CachedPart, depth int) (imap.BodyStructure, error) {
	if p == nil {
		return nil, nil
	}
	if depth > MaxCacheDepth {
		return nil, ErrCacheDepth
	}
	if p.Multi {
		bs := &imap.BodyStructureMultiPart{Subtype: p.Subtype}
		for _, c := range p.Children {
			child, err := FromCachedPart(c, depth+1)
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
				Params: p.ExtParams, Disposition: FromCachedDisposition(p.Disposition),
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
		child, err := FromCachedPart(m.BodyStructure, depth+1)
		if err != nil {
			return nil, err
		}
		bs.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope: FromCachedEnvelope(m.Envelope), BodyStructure: child, NumLines: m.NumLines,
		}
	}
	if p.TextLines != nil {
		bs.Text = &imap.BodyStructureText{NumLines: *p.TextLines}
	}
	if p.HasExt {
		bs.Extended = &imap.BodyStructureSinglePartExt{
			Disposition: FromCachedDisposition(p.Disposition), Language: p.Language, Location: p.Location,
		}
	}
	return bs, nil
}

// EncodeEnvelope serializes an envelope for the index, in the binary form
// (BinaryVersion).
func EncodeEnvelope(e *imap.Envelope) ([]byte, error) {
	return encodeEnvelopeBinary(ToCachedEnvelope(e)), nil
}

// DecodeEnvelope reads an envelope in either form: binary (BinaryVersion)
// or JSON (CacheVersion, as rows written before the binary form hold).
func DecodeEnvelope(b []byte) (*imap.Envelope, error) {
	var c *CachedEnvelope
	switch {
	case len(b) > 0 && b[0] == BinaryVersion:
		var err error
		if c, err = decodeEnvelopeBinary(b[1:]); err != nil {
			return nil, err
		}
	case len(b) > 0 && b[0] == CacheVersion:
		if err := json.Unmarshal(b[1:], &c); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("unknown envelope encoding")
	}
	return FromCachedEnvelope(c), nil
}

// EncodeBodyStructure serializes a body structure for the index, in the
// binary form (BinaryVersion).
func EncodeBodyStructure(bs imap.BodyStructure) ([]byte, error) {
	p, err := ToCachedPart(bs, 0)
	if err != nil {
		return nil, err
	}
	return encodePartBinary(p), nil
}

// DecodeBodyStructure reads a body structure in either form, as
// DecodeEnvelope.
func DecodeBodyStructure(b []byte) (imap.BodyStructure, error) {
	var p *CachedPart
	switch {
	case len(b) > 0 && b[0] == BinaryVersion:
		var err error
		if p, err = decodePartBinary(b[1:]); err != nil {
			return nil, err
		}
	case len(b) > 0 && b[0] == CacheVersion:
		if err := json.Unmarshal(b[1:], &p); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("unknown body structure encoding")
	}
	return FromCachedPart(p, 0)
}

// DateNum is t's calendar date in t's own zone as YYYYMMDD; IMAP date
// searches ignore time and zone (RFC 9051 §6.4.4).
func DateNum(t time.Time) int64 {
	y, m, d := t.Date()
	return int64(y)*10000 + int64(m)*100 + int64(d)
}
