package mimeparse

import (
	"io"

	"github.com/emersion/go-message/textproto"
)

// ReadHeader reads a message's header by the rule the store applies at
// delivery and APPEND: the fields that start in its first MaxHeaderBytes
// bytes, a field cut by that limit left out, and a malformed line ending
// the header (as go-message's ReadHeader). complete says the whole header
// fit. smtpd uses it, so SMTP and the store see the same fields. It reads
// at most MaxHeaderBytes+1 bytes of r.
func ReadHeader(r io.Reader) (h textproto.Header, complete bool, err error) {
	p := newParser(io.LimitReader(r, MaxHeaderBytes+1), true)
	p.keepHeader = true
	root, err := p.run()
	if err != nil {
		return textproto.Header{}, false, err
	}
	return root.header, !root.HeaderCut, nil
}
