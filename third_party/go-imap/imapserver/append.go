package imapserver

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// defaultAppendLimit is the default maximum size of an APPEND payload.
const defaultAppendLimit = 100 * 1024 * 1024 // 100MiB

func (c *Conn) handleAppend(tag string, dec *imapwire.Decoder) error {
	var (
		mailbox string
		options imap.AppendOptions
	)
	if !dec.ExpectSP() || !dec.ExpectMailbox(&mailbox) || !dec.ExpectSP() {
		return dec.Err()
	}
	// Posthouse patch: a session that reads APPEND itself gets every
	// message of the command (MULTIAPPEND) through an AppendReader.
	if sess, ok := c.session.(SessionAppendMessages); ok && c.checkState(imap.ConnStateAuthenticated) == nil {
		return c.handleAppendMessages(tag, dec, mailbox, sess)
	}

	hasFlagList, err := dec.List(func() error {
		flag, err := internal.ExpectFlag(dec)
		if err != nil {
			return err
		}
		options.Flags = append(options.Flags, flag)
		return nil
	})
	if err != nil {
		return err
	}
	if hasFlagList && !dec.ExpectSP() {
		return dec.Err()
	}

	t, err := internal.DecodeDateTime(dec)
	if err != nil {
		return err
	}
	if !t.IsZero() && !dec.ExpectSP() {
		return dec.Err()
	}
	options.Time = t

	var dataExt string
	// Posthouse patch: a literal8 (BINARY) is reported to the session.
	options.Binary = dec.Special('~')
	if !options.Binary && dec.Atom(&dataExt) {
		switch strings.ToUpper(dataExt) {
		case "UTF8":
			// '~' is the literal8 prefix
			if !dec.ExpectSP() || !dec.ExpectSpecial('(') || !dec.ExpectSpecial('~') {
				return dec.Err()
			}
		default:
			return newClientBugError("Unknown APPEND data extension")
		}
	}

	lit, nonSync, err := dec.ExpectLiteralReader()
	if err != nil {
		return err
	}

	appendLimit := int64(defaultAppendLimit)
	if appendLimitSession, ok := c.session.(SessionAppendLimit); ok {
		appendLimit = int64(appendLimitSession.AppendLimit())
	}

	if lit.Size() > appendLimit {
		c.refuseLiteral(dec, nonSync) // Posthouse patch
		return &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeTooBig,
			Text: fmt.Sprintf("Literals are limited to %v bytes for this command", appendLimit),
		}
	}
	if err := c.acceptLiteral(lit.Size(), nonSync); err != nil {
		return err
	}

	c.setReadTimeout(literalReadTimeout)
	defer c.setReadTimeout(cmdReadTimeout)

	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		io.Copy(io.Discard, lit)
		dec.CRLF()
		return err
	}

	// Posthouse patch: the session reads the message through body, which
	// reports a literal cut short by the connection, or followed by
	// anything but the end of the command, as an error instead of EOF, so
	// the message is not stored. Upstream stored it, then returned without
	// a reply when the command's end did not parse (the client hung), and
	// stored a truncated message when the connection dropped.
	body := &appendBody{lit: lit, dec: dec, utf8: dataExt != ""}
	data, appendErr := c.session.Append(mailbox, body, &options)
	if _, discardErr := io.Copy(io.Discard, body); discardErr != nil {
		return discardErr
	}
	if appendErr != nil {
		return appendErr
	}
	if err := c.poll("APPEND"); err != nil {
		return err
	}
	return c.writeAppendOK(tag, data)
}

func (c *Conn) writeAppendOK(tag string, data *imap.AppendData) error {
	enc := newResponseEncoder(c)
	defer enc.end()

	enc.Atom(tag).SP().Atom("OK").SP()
	if data != nil {
		enc.Special('[')
		enc.Atom("APPENDUID").SP().Number(data.UIDValidity).SP()
		if len(data.UIDs) > 0 {
			// Posthouse patch: MULTIAPPEND's uid-set (RFC 4315 §3).
			enc.NumSet(data.UIDs)
		} else {
			enc.UID(data.UID)
		}
		enc.Special(']').SP()
	}
	enc.Text("APPEND completed")
	return enc.CRLF()
}

// appendBody is the message literal of an APPEND: at the literal's end it
// checks that all of it arrived and that the command ends there, and fails
// the read otherwise (Posthouse patch).
type appendBody struct {
	lit  *imapwire.LiteralReader
	dec  *imapwire.Decoder
	utf8 bool // the literal is inside "UTF8 (~{n})"
	n    int64
	done bool
	err  error
}

func (b *appendBody) Size() int64 { return b.lit.Size() }

func (b *appendBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, b.err
	}
	n, err := b.lit.Read(p)
	b.n += int64(n)
	if err != io.EOF {
		return n, err
	}
	b.done = true
	switch {
	case b.n < b.lit.Size():
		b.err = io.ErrUnexpectedEOF
	case b.utf8 && !b.dec.ExpectSpecial(')'), !b.dec.ExpectCRLF():
		b.err = b.dec.Err()
		var decErr *imapwire.DecoderExpectError
		if errors.As(b.err, &decErr) {
			// An *imap.Error, so a session that wraps the read error
			// (with %w) still answers BAD.
			b.err = &imap.Error{
				Type: imap.StatusResponseTypeBad,
				Code: imap.ResponseCodeClientBug,
				Text: "Syntax error: " + decErr.Message,
			}
		}
	default:
		b.err = io.EOF
	}
	return n, b.err
}
