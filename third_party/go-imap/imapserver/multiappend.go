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

// SessionAppendMessages is a session that reads each APPEND command itself,
// message by message: every message of a MULTIAPPEND (RFC 3502) in turn.
// Once the connection is authenticated the library calls AppendMessages
// instead of Session.Append. (Posthouse patch.)
type SessionAppendMessages interface {
	// AppendMessages handles one APPEND command into mailbox. It calls
	// r.Next until Next returns io.EOF, which says the command ended
	// correctly after the last message; it must not store anything
	// before (until then the command may still fail: the connection may
	// drop, the syntax may be wrong, a message may be over its limit).
	// When Next fails, AppendMessages returns that error. When
	// AppendMessages fails on its own, the library reads the rest of the
	// command, keeping nothing (a synchronizing literal is refused
	// instead, so the client sends no more), and answers with its error.
	AppendMessages(mailbox string, r *AppendReader) (*imap.AppendData, error)
}

// AppendReader reads the messages of one APPEND command (Posthouse patch).
type AppendReader struct {
	c        *Conn
	dec      *imapwire.Decoder
	cur      *AppendMessage
	done     bool  // no more messages: err says why
	err      error // io.EOF once the command ended correctly
	draining bool  // the session failed: skip the rest, refuse sync literals
}

// AppendMessage is one message of an APPEND command.
type AppendMessage struct {
	Options imap.AppendOptions
	// Literal is the message. Its reads fail with io.ErrUnexpectedEOF (or
	// the connection's error) when the connection ends before all of it
	// arrived. Nil for a CATENATE message.
	Literal imap.LiteralReader
	// Catenate says the message is built from parts (RFC 4469), read
	// with NextPart. (Posthouse patch.)
	Catenate bool

	r    *AppendReader
	lit  *appendLiteral
	utf8 bool // the literal is inside "UTF8 (~{n})"

	// CATENATE: the current TEXT part's literal, the parts read, and
	// whether the closing ")" was read.
	partLit   *appendLiteral
	parts     int
	partsDone bool
}

// CatenatePart is one part of a CATENATE message (RFC 4469 §5): a URL
// naming a message or section on the server, or a TEXT literal.
// (Posthouse patch.)
type CatenatePart struct {
	URL string
	// Text is the part's literal when URL is empty; it fails its reads
	// like AppendMessage.Literal. Binary says it was a literal8.
	Text   imap.LiteralReader
	Binary bool
}

// errRefusedWhileDraining ends a drain at a synchronizing literal: the
// client sends nothing more once it gets the tagged reply.
var errRefusedWhileDraining = errors.New("imapserver: literal refused after a failed APPEND")

// Next returns the next message of the command, or io.EOF once the
// command has ended correctly after the last one. limit bounds the size
// of the message's literal (zero: the session's AppendLimit); a literal
// over it is refused with NO [TOOBIG]. The previous message's literal
// need not have been read to its end; the rest is skipped.
func (r *AppendReader) Next(limit int64) (*AppendMessage, error) {
	if r.done {
		return nil, r.err
	}
	if r.cur != nil {
		if err := r.cur.finish(); err != nil {
			return nil, r.fail(err)
		}
		r.cur = nil
		// After a message another one follows, or the command ends.
		if !r.dec.SP() {
			if !r.dec.ExpectCRLF() {
				return nil, r.fail(r.dec.Err())
			}
			r.done, r.err = true, io.EOF
			return nil, io.EOF
		}
	}
	m, err := r.readMessage(limit)
	if err != nil {
		return nil, r.fail(err)
	}
	r.cur = m
	return m, nil
}

func (r *AppendReader) readMessage(limit int64) (*AppendMessage, error) {
	dec := r.dec
	m := &AppendMessage{r: r}
	hasFlagList, err := dec.List(func() error {
		flag, err := internal.ExpectFlag(dec)
		if err != nil {
			return err
		}
		m.Options.Flags = append(m.Options.Flags, flag)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if hasFlagList && !dec.ExpectSP() {
		return nil, dec.Err()
	}
	t, err := internal.DecodeDateTime(dec)
	if err != nil {
		return nil, err
	}
	if !t.IsZero() && !dec.ExpectSP() {
		return nil, dec.Err()
	}
	m.Options.Time = t

	m.Options.Binary = dec.Special('~')
	var dataExt string
	if !m.Options.Binary && dec.Atom(&dataExt) {
		switch strings.ToUpper(dataExt) {
		case "UTF8":
			if !dec.ExpectSP() || !dec.ExpectSpecial('(') || !dec.ExpectSpecial('~') {
				return nil, dec.Err()
			}
			m.utf8 = true
		case "CATENATE":
			// Posthouse patch: RFC 4469; the parts follow, read by
			// NextPart.
			if !dec.ExpectSP() || !dec.ExpectSpecial('(') {
				return nil, dec.Err()
			}
			m.Catenate = true
			return m, nil
		default:
			return nil, newClientBugError("Unknown APPEND data extension")
		}
	}
	lit, err := r.literal(limit)
	if err != nil {
		return nil, err
	}
	m.lit = lit
	m.Literal = lit
	return m, nil
}

// literal reads a literal's header and accepts it (or refuses it: over
// limit, or while draining).
func (r *AppendReader) literal(limit int64) (*appendLiteral, error) {
	lit, nonSync, err := r.dec.ExpectLiteralReader()
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = defaultAppendLimit
		if s, ok := r.c.session.(SessionAppendLimit); ok {
			limit = int64(s.AppendLimit())
		}
	}
	if lit.Size() > limit {
		r.c.refuseLiteral(r.dec, nonSync)
		return nil, &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeTooBig,
			Text: fmt.Sprintf("Literals are limited to %v bytes for this command", limit),
		}
	}
	if r.draining && !nonSync {
		r.c.refuseLiteral(r.dec, false)
		return nil, errRefusedWhileDraining
	}
	if err := r.c.acceptLiteral(lit.Size(), nonSync); err != nil {
		return nil, err
	}
	r.c.setReadTimeout(literalReadTimeout)
	return &appendLiteral{lit: lit}, nil
}

// finish skips what is left of the message and checks that all of it
// arrived; the command's next line starts after it.
func (m *AppendMessage) finish() error {
	if m.Catenate {
		for {
			_, err := m.NextPart(0)
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
		}
		m.r.dec.NewLine()
		return nil
	}
	if err := m.lit.skip(); err != nil {
		return err
	}
	if m.utf8 && !m.r.dec.ExpectSpecial(')') {
		return m.r.dec.Err()
	}
	m.r.dec.NewLine()
	return nil
}

// fail ends the command's reading with err; syntax errors become BAD
// (an *imap.Error, so a session that wraps them still answers BAD).
func (r *AppendReader) fail(err error) error {
	var decErr *imapwire.DecoderExpectError
	if errors.As(err, &decErr) {
		err = &imap.Error{
			Type: imap.StatusResponseTypeBad,
			Code: imap.ResponseCodeClientBug,
			Text: "Syntax error: " + decErr.Message,
		}
	}
	r.done, r.err = true, err
	return err
}

// drain reads the rest of a command the session gave up on, keeping
// nothing. It returns io.EOF when the command ended correctly or a
// synchronizing literal was refused, or why reading failed.
func (r *AppendReader) drain() error {
	r.draining = true
	for {
		if _, err := r.Next(0); err != nil {
			if errors.Is(err, errRefusedWhileDraining) {
				return io.EOF
			}
			return err
		}
	}
}

// appendLiteral is a message literal that reports a literal cut short by
// the connection as an error rather than EOF.
type appendLiteral struct {
	lit *imapwire.LiteralReader
	n   int64
	err error
}

func (l *appendLiteral) Size() int64 { return l.lit.Size() }

func (l *appendLiteral) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.lit.Read(p)
	l.n += int64(n)
	if err == io.EOF && l.n < l.lit.Size() {
		err = io.ErrUnexpectedEOF
	}
	l.err = err
	return n, err
}

// skip reads the literal to its end.
func (l *appendLiteral) skip() error {
	if _, err := io.Copy(io.Discard, l); err != nil {
		return err
	}
	return nil
}

func (c *Conn) handleAppendMessages(tag string, dec *imapwire.Decoder, mailbox string, sess SessionAppendMessages) error {
	defer c.setReadTimeout(cmdReadTimeout)
	r := &AppendReader{c: c, dec: dec}
	data, err := sess.AppendMessages(mailbox, r)
	if err != nil {
		if r.done {
			return err
		}
		// The session gave up: skip the rest of the command. Its syntax
		// errors and a dropped connection win over the session's reply.
		var imapErr *imap.Error
		derr := r.drain()
		if derr == io.EOF || (errors.As(derr, &imapErr) && imapErr.Type == imap.StatusResponseTypeNo) {
			return err
		}
		return derr
	}
	if !r.done || r.err != io.EOF {
		if derr := r.drain(); derr != io.EOF {
			return derr
		}
		return fmt.Errorf("imapserver: AppendMessages returned before the end of the command")
	}
	if err := c.poll("APPEND"); err != nil {
		return err
	}
	return c.writeAppendOK(tag, data)
}

// NextPart returns the next part of a CATENATE message, or io.EOF after
// the last. limit bounds a TEXT literal (zero: the session's
// AppendLimit). The previous part's literal need not have been read to
// its end. After io.EOF, AppendReader.Next goes on with the command.
// (Posthouse patch.)
func (m *AppendMessage) NextPart(limit int64) (*CatenatePart, error) {
	r := m.r
	switch {
	case !m.Catenate:
		return nil, errors.New("imapserver: NextPart of a message that is not CATENATE")
	case m.partsDone:
		return nil, io.EOF
	case r.done:
		return nil, r.err
	case r.cur != m:
		return nil, errors.New("imapserver: NextPart of a message already passed")
	}
	dec := r.dec
	if m.partLit != nil {
		if err := m.partLit.skip(); err != nil {
			return nil, r.fail(err)
		}
		m.partLit = nil
		dec.NewLine()
	}
	if m.parts > 0 {
		// RFC 4469 §5: parts are separated by SP; ")" ends them.
		if dec.Special(')') {
			m.partsDone = true
			return nil, io.EOF
		}
		if !dec.ExpectSP() {
			return nil, r.fail(dec.Err())
		}
	}
	m.parts++
	var kind string
	if !dec.ExpectAtom(&kind) || !dec.ExpectSP() {
		return nil, r.fail(dec.Err())
	}
	switch strings.ToUpper(kind) {
	case "URL":
		var url string
		if !dec.ExpectAString(&url) {
			return nil, r.fail(dec.Err())
		}
		return &CatenatePart{URL: url}, nil
	case "TEXT":
		binary := dec.Special('~')
		lit, err := r.literal(limit)
		if err != nil {
			return nil, r.fail(err)
		}
		m.partLit = lit
		return &CatenatePart{Text: lit, Binary: binary}, nil
	default:
		return nil, r.fail(newClientBugError("Unknown CATENATE part"))
	}
}
