package imapserver

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// Posthouse patch: QUOTA (RFC 9208) on the server side.

// SessionQuota is an IMAP session which supports QUOTA (RFC 9208).
type SessionQuota interface {
	Session

	// GetQuota returns the quota root's resources (GETQUOTA). A root that
	// does not exist is an error.
	GetQuota(root string) (*imap.QuotaData, error)
	// GetQuotaRoot returns the quota roots of a mailbox, with their
	// resources (GETQUOTAROOT); none is a valid answer.
	GetQuotaRoot(mailbox string) ([]imap.QuotaData, error)
	// SetQuota changes a root's limits (SETQUOTA); a session that does not
	// advertise QUOTASET refuses it.
	SetQuota(root string, limits map[imap.QuotaResourceType]int64) error
}

func (c *Conn) handleQuota(name string, dec *imapwire.Decoder) error {
	var (
		arg    string
		limits map[imap.QuotaResourceType]int64
	)
	if !dec.ExpectSP() {
		return dec.Err()
	}
	switch name {
	case "GETQUOTAROOT":
		if !dec.ExpectMailbox(&arg) {
			return dec.Err()
		}
	default:
		if !dec.ExpectAString(&arg) {
			return dec.Err()
		}
	}
	if name == "SETQUOTA" {
		limits = make(map[imap.QuotaResourceType]int64)
		if !dec.ExpectSP() {
			return dec.Err()
		}
		err := dec.ExpectList(func() error {
			var (
				typ   string
				limit int64
			)
			if !dec.ExpectAtom(&typ) || !dec.ExpectSP() || !dec.ExpectNumber64(&limit) {
				return dec.Err()
			}
			if len(limits) >= 16 {
				return newClientBugError("Too many quota resources")
			}
			limits[imap.QuotaResourceType(typ)] = limit
			return nil
		})
		if err != nil {
			return err
		}
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}
	session := c.session.(SessionQuota) // checked by the caller

	switch name {
	case "GETQUOTA":
		data, err := session.GetQuota(arg)
		if err != nil {
			return err
		}
		return c.writeQuota(data)
	case "GETQUOTAROOT":
		data, err := session.GetQuotaRoot(arg)
		if err != nil {
			return err
		}
		if err := c.writeQuotaRoot(arg, data); err != nil {
			return err
		}
		for i := range data {
			if err := c.writeQuota(&data[i]); err != nil {
				return err
			}
		}
		return nil
	default:
		return session.SetQuota(arg, limits)
	}
}

func (c *Conn) writeQuotaRoot(mailbox string, data []imap.QuotaData) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("QUOTAROOT").SP().Mailbox(mailbox)
	for _, d := range data {
		enc.SP().String(d.Root)
	}
	return enc.CRLF()
}

func (c *Conn) writeQuota(data *imap.QuotaData) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("QUOTA").SP().String(data.Root).SP()
	enc.List(len(data.Resources), func(i int) {
		r := data.Resources[i]
		enc.Atom(string(r.Type)).SP().Number64(r.Usage).SP().Number64(r.Limit)
	})
	return enc.CRLF()
}
