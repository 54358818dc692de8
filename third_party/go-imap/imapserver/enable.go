package imapserver

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

func (c *Conn) handleEnable(dec *imapwire.Decoder) error {
	var requested []imap.Cap
	for dec.SP() {
		cap, err := internal.ExpectCap(dec)
		if err != nil {
			return err
		}
		requested = append(requested, cap)
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}

	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}

	var enabled []imap.Cap
	for _, req := range requested {
		switch req {
		case imap.CapIMAP4rev2, imap.CapUTF8Accept:
			enabled = append(enabled, req)
		case imap.CapCondStore, imap.CapQResync:
			// Posthouse patch: RFC 7162 §3.1, §3.2.3 (QRESYNC implies
			// CONDSTORE), when the server advertises them.
			if c.server.options.caps().Has(req) {
				enabled = append(enabled, req)
			}
		}
	}

	condStore, qResync := false, false
	c.mutex.Lock()
	for _, e := range enabled {
		switch e {
		case imap.CapCondStore:
			condStore = true // enableCondStore records it, below
		case imap.CapQResync:
			condStore, qResync = true, true
		default:
			c.enabled[e] = struct{}{}
		}
	}
	c.mutex.Unlock()

	enc := newResponseEncoder(c)
	enc.Atom("*").SP().Atom("ENABLED")
	for _, c := range enabled {
		enc.SP().Atom(string(c))
	}
	err := enc.CRLF()
	enc.end()
	if err != nil || !condStore {
		return err
	}
	if err := c.enableCondStore(); err != nil {
		return err
	}
	if qResync {
		c.mutex.Lock()
		c.enabled[imap.CapQResync] = struct{}{}
		c.mutex.Unlock()
	}
	return nil
}
