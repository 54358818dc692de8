package mailauth

import (
	"errors"
	"io"
	"mime"
	"net/mail"
	"strings"
)

// Why a message has no usable author domain (RFC 7489 §6.6.1). Large
// receivers refuse such messages outright: a second address in From is the
// classic way around DMARC (the check passes for one, the reader sees the
// other). The inbound filter refuses them; Check reports dmarc=permerror.
var (
	ErrNoFrom       = errors.New("mailauth: no From: address")
	ErrMultipleFrom = errors.New("mailauth: more than one From: address")
	ErrBadFrom      = errors.New("mailauth: From: address unreadable")
)

// maxFromLen bounds one From field's value we parse (a real one is well
// under 1 KiB; the header as a whole is bounded by its reader).
const maxFromLen = 8 << 10

// fromParser reads addresses without decoding display names: only the
// address matters here, and an unknown charset in a name must not make the
// address unreadable.
var fromParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}}

// FromDomain returns the normalized domain of the one author address in
// the values of a message's From fields (RFC 5322 §3.6.2: exactly one
// From field; DMARC needs exactly one address in it). It fails with
// ErrNoFrom, ErrMultipleFrom or ErrBadFrom.
func FromDomain(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", ErrNoFrom
	case 1:
	default:
		return "", ErrMultipleFrom
	}
	v := values[0]
	if len(v) > maxFromLen {
		return "", ErrBadFrom
	}
	// Unfold (RFC 5322 §2.2.3) whatever the header reader left folded.
	v = strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(v)
	if strings.TrimSpace(v) == "" {
		return "", ErrNoFrom
	}
	list, err := fromParser.ParseList(v)
	if err != nil {
		a, ok := angleAddr(v)
		if !ok {
			return "", ErrBadFrom
		}
		list = []*mail.Address{a}
	}
	switch len(list) {
	case 0:
		return "", ErrNoFrom
	case 1:
	default:
		return "", ErrMultipleFrom
	}
	at := strings.LastIndexByte(list[0].Address, '@')
	if at < 0 {
		return "", ErrBadFrom
	}
	d, ok := NormalizeDomain(list[0].Address[at+1:])
	if !ok {
		return "", ErrBadFrom
	}
	return d, nil
}

// angleAddr reads a From value net/mail refuses for its display name (raw
// Latin-1 bytes, a stray ';' after the address: real mailers send both) by
// its one angle-addr alone. Anything with more than one '<' stays
// unreadable: it may hold more than one address.
func angleAddr(v string) (*mail.Address, bool) {
	i := strings.IndexByte(v, '<')
	if i < 0 || strings.Count(v, "<") != 1 {
		return nil, false
	}
	j := strings.IndexByte(v[i:], '>')
	if j < 0 {
		return nil, false
	}
	a, err := mail.ParseAddress(v[i : i+j+1])
	if err != nil {
		return nil, false
	}
	return a, true
}
