package imapserver

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionCreateMailboxID is a session that tells the MAILBOXID of the
// mailbox it creates, for CREATE's OK [MAILBOXID (id)] (OBJECTID, RFC 8474
// §4.1). Its CreateMailboxID is called instead of Create. Posthouse patch.
type SessionCreateMailboxID interface {
	Session
	CreateMailboxID(mailbox string, options *imap.CreateOptions) (id string, err error)
}

func (c *Conn) handleCreate(tag string, dec *imapwire.Decoder) error {
	var (
		name    string
		options imap.CreateOptions
	)
	if !dec.ExpectSP() || !dec.ExpectMailbox(&name) {
		return dec.Err()
	}
	if dec.SP() {
		var name string
		if !dec.ExpectSpecial('(') || !dec.ExpectAtom(&name) || !dec.ExpectSP() {
			return dec.Err()
		}
		switch strings.ToUpper(name) {
		case "USE":
			var err error
			options.SpecialUse, err = internal.ExpectMailboxAttrList(dec)
			if err != nil {
				return err
			}
		default:
			return newClientBugError("unknown CREATE parameter")
		}
		if !dec.ExpectSpecial(')') {
			return dec.Err()
		}
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}
	var id string
	if session, ok := c.session.(SessionCreateMailboxID); ok {
		var err error
		if id, err = session.CreateMailboxID(name, &options); err != nil {
			return err
		}
	} else if err := c.session.Create(name, &options); err != nil {
		return err
	}
	if err := c.poll("CREATE"); err != nil {
		return err
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom(tag).SP().Atom("OK").SP()
	if id != "" {
		enc.Special('[').Atom("MAILBOXID").SP().Special('(').Atom(id).Special(')').Special(']').SP()
	}
	enc.Text("CREATE completed")
	return enc.CRLF()
}
