package imapserver

// Posthouse patch: the ID command (RFC 2971). Upstream v2.0.0-beta.8 has no
// server side for ID; before login an unknown command ends the connection,
// which broke clients that send ID first. Fields RFC 2971 does not define
// are passed to the session in IDData.Other.

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionID is an IMAP session which supports ID (RFC 2971). ID receives the
// client's identification (nil if the client sent NIL) and returns the
// server's (nil: NIL). It may be called in any state.
type SessionID interface {
	Session
	ID(client *imap.IDData) *imap.IDData
}

// maxIDPairs is RFC 2971 §3.3's limit on field-value pairs.
const maxIDPairs = 30

func (c *Conn) handleID(dec *imapwire.Decoder) error {
	if !dec.ExpectSP() {
		return dec.Err()
	}
	var client *imap.IDData
	var atom string
	if dec.Atom(&atom) {
		if !dec.Expect(strings.EqualFold(atom, "NIL"), "NIL") {
			return dec.Err()
		}
	} else {
		client = &imap.IDData{}
		var key string
		n := 0
		err := dec.ExpectList(func() error {
			n++
			if n > 2*maxIDPairs {
				return newClientBugError("Too many ID fields")
			}
			if n%2 == 1 {
				if !dec.ExpectString(&key) {
					return dec.Err()
				}
				return nil
			}
			var value string
			if !dec.ExpectNString(&value) {
				return dec.Err()
			}
			setIDField(client, key, value)
			return nil
		})
		if err != nil {
			return err
		}
		if n%2 == 1 {
			return newClientBugError("ID field without a value")
		}
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}

	var server *imap.IDData
	if sess, ok := c.session.(SessionID); ok {
		server = sess.ID(client)
	}

	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("ID").SP()
	fields := idFields(server)
	if len(fields) == 0 {
		enc.NIL()
	} else {
		enc.List(len(fields)/2, func(i int) {
			enc.String(fields[2*i]).SP().String(fields[2*i+1])
		})
	}
	return enc.CRLF()
}

func setIDField(d *imap.IDData, key, value string) {
	switch strings.ToLower(key) {
	case "name":
		d.Name = value
	case "version":
		d.Version = value
	case "os":
		d.OS = value
	case "os-version":
		d.OSVersion = value
	case "vendor":
		d.Vendor = value
	case "support-url":
		d.SupportURL = value
	case "address":
		d.Address = value
	case "date":
		d.Date = value
	case "command":
		d.Command = value
	case "arguments":
		d.Arguments = value
	case "environment":
		d.Environment = value
	default:
		// Posthouse patch: keep non-standard fields (x-originating-ip
		// from a webmail), at most maxIDPairs of them.
		if d.Other == nil {
			d.Other = map[string]string{}
		}
		d.Other[strings.ToLower(key)] = value
	}
}

func idFields(d *imap.IDData) []string {
	if d == nil {
		return nil
	}
	var l []string
	add := func(k, v string) {
		if v != "" {
			l = append(l, k, v)
		}
	}
	add("name", d.Name)
	add("version", d.Version)
	add("os", d.OS)
	add("os-version", d.OSVersion)
	add("vendor", d.Vendor)
	add("support-url", d.SupportURL)
	add("address", d.Address)
	add("date", d.Date)
	add("command", d.Command)
	add("arguments", d.Arguments)
	add("environment", d.Environment)
	return l
}
