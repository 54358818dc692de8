package indexrow

import (
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
)

// BinaryVersion is the first byte of the compact binary form of cached
// envelopes and body structures, which Encode* write. The JSON form
// (CacheVersion) took about 370 bytes per plain-text message, more than half
// of an index row; the binary form takes about 160. Decode* read both, so
// rows written before stay readable.
//
// The form: strings are a uvarint length and the bytes; integers varints;
// lists and maps a uvarint of their length plus one, 0 for nil, so that nil
// and empty stay apart as in the JSON form; map entries in key order. An
// envelope is a date (0: none; 1: unix seconds, nanoseconds and zone
// offset), the subject, six address lists (from, sender, reply-to, to, cc,
// bcc; an address is name, route, mailbox, host), In-Reply-To and
// Message-ID. A body part is a kind byte (0: nil, 1: single, 2: multipart)
// and its fields in the order of CachedPart, optional ones behind a bit
// mask. Decoding consumes exactly the value: trailing bytes are an error.
const BinaryVersion byte = 2

const (
	partNil byte = iota
	partSingle
	partMulti
)

// Bits of a part's optional fields.
const (
	hasMessage byte = 1 << iota
	hasText
	hasExt
	hasDisposition
)

var errCacheCorrupt = errors.New("malformed cached value")

type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }

func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// count writes a list or map length, 0 meaning nil.
func (e *encoder) count(n int, isNil bool) {
	if isNil {
		e.uvarint(0)
		return
	}
	e.uvarint(uint64(n) + 1)
}

func (e *encoder) strs(l []string) {
	e.count(len(l), l == nil)
	for _, s := range l {
		e.str(s)
	}
}

func (e *encoder) params(m map[string]string) {
	e.count(len(m), m == nil)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		e.str(k)
		e.str(m[k])
	}
}

func (e *encoder) addrs(l []imap.Address) {
	e.count(len(l), l == nil)
	for _, a := range l {
		e.str(a.Name)
		e.str(a.Route)
		e.str(a.Mailbox)
		e.str(a.Host)
	}
}

func (e *encoder) envelope(c *CachedEnvelope) {
	if c.Date == nil {
		e.b = append(e.b, 0)
	} else {
		_, off := c.Date.Zone()
		e.b = append(e.b, 1)
		e.varint(c.Date.Unix())
		e.uvarint(uint64(c.Date.Nanosecond()))
		e.varint(int64(off))
	}
	e.str(c.Subject)
	for _, l := range [][]imap.Address{c.From, c.Sender, c.ReplyTo, c.To, c.Cc, c.Bcc} {
		e.addrs(l)
	}
	e.strs(c.InReplyTo)
	e.str(c.MessageID)
}

func (e *encoder) disposition(d *CachedDisposition) {
	e.str(d.Value)
	e.params(d.Params)
}

func (e *encoder) part(p *CachedPart) {
	switch {
	case p == nil:
		e.b = append(e.b, partNil)
	case p.Multi:
		e.b = append(e.b, partMulti)
		e.str(p.Subtype)
		e.count(len(p.Children), false)
		for _, c := range p.Children {
			e.part(c)
		}
		e.b = append(e.b, e.extBits(p))
		if p.HasExt {
			e.params(p.ExtParams)
			e.ext(p)
		}
	default:
		e.b = append(e.b, partSingle)
		e.str(p.Type)
		e.str(p.Subtype)
		e.params(p.Params)
		e.str(p.ID)
		e.str(p.Description)
		e.str(p.Encoding)
		e.uvarint(uint64(p.Size))
		bits := e.extBits(p)
		if p.Message != nil {
			bits |= hasMessage
		}
		if p.TextLines != nil {
			bits |= hasText
		}
		e.b = append(e.b, bits)
		if p.Message != nil {
			if p.Message.Envelope == nil {
				e.b = append(e.b, 0)
			} else {
				e.b = append(e.b, 1)
				e.envelope(p.Message.Envelope)
			}
			e.part(p.Message.BodyStructure)
			e.varint(p.Message.NumLines)
		}
		if p.TextLines != nil {
			e.varint(*p.TextLines)
		}
		if p.HasExt {
			e.ext(p)
		}
	}
}

func (e *encoder) extBits(p *CachedPart) byte {
	var bits byte
	if p.HasExt {
		bits |= hasExt
		if p.Disposition != nil {
			bits |= hasDisposition
		}
	}
	return bits
}

// ext writes the extension fields common to both kinds of part.
func (e *encoder) ext(p *CachedPart) {
	if p.Disposition != nil {
		e.disposition(p.Disposition)
	}
	e.strs(p.Language)
	e.str(p.Location)
}

// decoder reads what encoder wrote; every length is checked against the
// bytes left, so a corrupt value fails instead of allocating.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCacheCorrupt
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a list length written by encoder.count: isNil, or n items,
// each at least min bytes long (so n is bounded by what is left).
func (d *decoder) count(min int) (n int, isNil bool) {
	v := d.uvarint()
	if v == 0 {
		return 0, true
	}
	if v-1 > uint64(len(d.b)/min) {
		d.fail()
		return 0, true
	}
	return int(v - 1), false
}

func (d *decoder) strs() []string {
	n, isNil := d.count(1)
	if isNil {
		return nil
	}
	l := make([]string, 0, n)
	for range n {
		l = append(l, d.str())
	}
	return l
}

func (d *decoder) params() map[string]string {
	n, isNil := d.count(2)
	if isNil {
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := d.str()
		m[k] = d.str()
	}
	return m
}

func (d *decoder) addrs() []imap.Address {
	n, isNil := d.count(4)
	if isNil {
		return nil
	}
	l := make([]imap.Address, 0, n)
	for range n {
		l = append(l, imap.Address{Name: d.str(), Route: d.str(), Mailbox: d.str(), Host: d.str()})
	}
	return l
}

func (d *decoder) envelope() *CachedEnvelope {
	c := &CachedEnvelope{}
	switch d.byte() {
	case 0:
	case 1:
		secs, nsec, off := d.varint(), d.uvarint(), d.varint()
		if nsec >= 1e9 || off <= -100000 || off >= 100000 {
			d.fail()
			return c
		}
		loc := time.UTC
		if off != 0 {
			loc = time.FixedZone("", int(off))
		}
		t := time.Unix(secs, int64(nsec)).In(loc)
		c.Date = &t
	default:
		d.fail()
		return c
	}
	c.Subject = d.str()
	for _, l := range []*[]imap.Address{&c.From, &c.Sender, &c.ReplyTo, &c.To, &c.Cc, &c.Bcc} {
		*l = d.addrs()
	}
	c.InReplyTo = d.strs()
	c.MessageID = d.str()
	return c
}

func (d *decoder) disposition() *CachedDisposition {
	return &CachedDisposition{Value: d.str(), Params: d.params()}
}

func (d *decoder) ext(p *CachedPart, bits byte) {
	if bits&hasDisposition != 0 {
		p.Disposition = d.disposition()
	}
	p.Language = d.strs()
	p.Location = d.str()
}

func (d *decoder) part(depth int) *CachedPart {
	if d.err != nil {
		return nil
	}
	if depth > MaxCacheDepth {
		d.err = ErrCacheDepth
		return nil
	}
	switch d.byte() {
	case partNil:
		return nil
	case partMulti:
		p := &CachedPart{Multi: true, Subtype: d.str()}
		n, _ := d.count(1)
		for range n {
			c := d.part(depth + 1)
			if d.err != nil {
				return nil
			}
			p.Children = append(p.Children, c)
		}
		bits := d.byte()
		if bits&^(hasExt|hasDisposition) != 0 || bits == hasDisposition {
			d.fail()
			return nil
		}
		if bits&hasExt != 0 {
			p.HasExt = true
			p.ExtParams = d.params()
			d.ext(p, bits)
		}
		return p
	case partSingle:
		p := &CachedPart{Type: d.str(), Subtype: d.str(), Params: d.params(),
			ID: d.str(), Description: d.str(), Encoding: d.str()}
		size := d.uvarint()
		if size > 1<<32-1 {
			d.fail()
			return nil
		}
		p.Size = uint32(size)
		bits := d.byte()
		if bits&^(hasMessage|hasText|hasExt|hasDisposition) != 0 || bits&(hasExt|hasDisposition) == hasDisposition {
			d.fail()
			return nil
		}
		if bits&hasMessage != 0 {
			m := &CachedMessage{}
			switch d.byte() {
			case 0:
			case 1:
				m.Envelope = d.envelope()
			default:
				d.fail()
				return nil
			}
			m.BodyStructure = d.part(depth + 1)
			m.NumLines = d.varint()
			p.Message = m
		}
		if bits&hasText != 0 {
			n := d.varint()
			p.TextLines = &n
		}
		if bits&hasExt != 0 {
			p.HasExt = true
			d.ext(p, bits)
		}
		return p
	default:
		d.fail()
		return nil
	}
}

// end reports the decoder's error, or one if bytes are left over.
func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errCacheCorrupt
	}
	return d.err
}

func encodeEnvelopeBinary(c *CachedEnvelope) []byte {
	e := encoder{b: make([]byte, 0, 160)}
	e.b = append(e.b, BinaryVersion)
	if c == nil {
		e.b = append(e.b, 0)
		return e.b
	}
	e.b = append(e.b, 1)
	e.envelope(c)
	return e.b
}

func decodeEnvelopeBinary(b []byte) (*CachedEnvelope, error) {
	d := decoder{b: b}
	var c *CachedEnvelope
	switch d.byte() {
	case 0:
	case 1:
		c = d.envelope()
	default:
		d.fail()
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return c, nil
}

func encodePartBinary(p *CachedPart) []byte {
	e := encoder{b: make([]byte, 0, 64)}
	e.b = append(e.b, BinaryVersion)
	e.part(p)
	return e.b
}

func decodePartBinary(b []byte) (*CachedPart, error) {
	d := decoder{b: b}
	p := d.part(0)
	if err := d.end(); err != nil {
		return nil, err
	}
	return p, nil
}
