package pop3d

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// reply is what a handler returns; only the session loop writes it.
type reply struct {
	ok bool
	// code is an RFC 2449 §8 response code without brackets ("SYS/TEMP",
	// "AUTH", "IN-USE"), only on -ERR.
	code string
	text string

	// cont makes this a SASL continuation ("+ " text) instead of a status
	// line (RFC 5034 §4).
	cont bool

	// multi makes this a multi-line reply (RFC 1939 §3): lines, then body,
	// then the terminating ".". Both are dot-stuffed by the writer.
	multi bool
	lines []string
	body  io.Reader // closed by the loop when it is an io.Closer
	// sent runs after the whole reply was written to the connection's
	// buffer without error (RETR records the message as seen).
	sent func()

	// protoErr counts this reply against the client's error budget.
	protoErr bool
	// quit closes the connection once the reply is flushed.
	quit bool
	// startTLS upgrades the connection once the reply is flushed (STLS).
	startTLS bool
}

func okReply(text string) reply { return reply{ok: true, text: text} }

func errReply(code, text string) reply { return reply{code: code, text: text} }

// protoError is an -ERR for a client mistake: it counts against the
// client's error budget.
func protoError(text string) reply { return reply{text: text, protoErr: true} }

// Recurring replies.
var (
	replyUnknownCommand = protoError("unknown command")
	replyWrongState     = protoError("command not valid in this state")
	replySyntax         = protoError("syntax error")
	replyNoSuchMessage  = protoError("no such message")
	replyMsgDeleted     = protoError("message already deleted")
	replyNotSecure      = protoError("plaintext authentication is not allowed before TLS; use STLS first")
	replyTempFail       = errReply("SYS/TEMP", "internal server error, try again later")
	replyShuttingDown   = reply{code: "SYS/TEMP", text: "server shutting down, try again later", quit: true}
	replyTooManyErrors  = reply{text: "too many bad commands, closing connection", quit: true}
	replyIdle           = reply{text: "autologout; idle for too long", quit: true}
	replyLineTooLong    = protoError("line too long")
)

// errBodyRead marks a failure reading a message while its reply was being
// sent: the +OK is already out, so the connection must be closed.
var errBodyRead = errors.New("pop3d: reading message body")

// writeReply formats r onto w. buf is scratch space for copying bodies.
// It returns the number of body octets written (before stuffing) and an
// error from the connection, or one wrapping errBodyRead.
func writeReply(w *bufio.Writer, r reply, buf []byte) (int64, error) {
	switch {
	case r.cont:
		w.WriteString("+ ")
		w.WriteString(r.text)
	case r.ok:
		w.WriteString("+OK")
		if r.text != "" {
			w.WriteByte(' ')
			w.WriteString(r.text)
		}
	default:
		w.WriteString("-ERR")
		if r.code != "" {
			w.WriteString(" [")
			w.WriteString(r.code)
			w.WriteByte(']')
		}
		if r.text != "" {
			w.WriteByte(' ')
			w.WriteString(r.text)
		}
	}
	if _, err := w.WriteString("\r\n"); err != nil {
		return 0, err
	}
	if !r.multi {
		return 0, nil
	}
	dw := dotWriter{w: w, lineStart: true}
	for _, l := range r.lines {
		dw.Write([]byte(l))
		dw.Write(crlf)
	}
	var n int64
	if r.body != nil {
		// Hide any WriterTo so the copy goes through our buffer and the
		// stuffing writer.
		var err error
		n, err = io.CopyBuffer(&dw, struct{ io.Reader }{r.body}, buf)
		if err != nil {
			if dw.err != nil {
				return n, dw.err
			}
			return n, errors.Join(errBodyRead, err)
		}
	}
	return n, dw.Close()
}

var crlf = []byte("\r\n")

// dotWriter byte-stuffs a multi-line reply (RFC 1939 §3): a line starting
// with "." gets one more. Close ends the reply with CRLF "." CRLF, adding a
// CRLF first if the data did not end a line. Messages are stored with CRLF
// line ends, so what goes through unchanged is exactly the stored octets.
type dotWriter struct {
	w         *bufio.Writer
	lineStart bool
	err       error
}

var nlDot = []byte("\n.")

func (d *dotWriter) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n := len(p)
	for len(p) > 0 {
		if d.lineStart && p[0] == '.' {
			d.w.WriteByte('.')
		}
		i := bytes.Index(p, nlDot)
		if i < 0 {
			if _, err := d.w.Write(p); err != nil {
				d.err = err
				return 0, err
			}
			d.lineStart = p[len(p)-1] == '\n'
			break
		}
		if _, err := d.w.Write(p[:i+1]); err != nil {
			d.err = err
			return 0, err
		}
		p = p[i+1:]
		d.lineStart = true
	}
	return n, nil
}

func (d *dotWriter) Close() error {
	if d.err != nil {
		return d.err
	}
	if !d.lineStart {
		d.w.Write(crlf)
	}
	_, err := d.w.WriteString(".\r\n")
	return err
}

// topReader yields a message's header, the empty line after it, and then at
// most lines body lines (RFC 1939 §7, TOP). A message without an empty line
// is all header and is given whole.
type topReader struct {
	br        *bufio.Reader
	left      int64 // body lines still to give
	inBody    bool
	lineStart bool
	done      bool
	pending   []byte
	err       error
}

func newTopReader(r io.Reader, lines int64) *topReader {
	return &topReader{br: bufio.NewReaderSize(r, 16<<10), left: lines, lineStart: true}
}

func (t *topReader) Read(p []byte) (int, error) {
	for len(t.pending) == 0 {
		if t.err != nil {
			return 0, t.err
		}
		if t.done {
			return 0, io.EOF
		}
		frag, err := t.br.ReadSlice('\n')
		if len(frag) > 0 {
			complete := frag[len(frag)-1] == '\n'
			if complete {
				if !t.inBody {
					if t.lineStart && (len(frag) == 1 || len(frag) == 2 && frag[0] == '\r') {
						t.inBody = true
						t.done = t.left == 0
					}
				} else {
					t.left--
					t.done = t.left == 0
				}
			}
			t.lineStart = complete
			t.pending = frag
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			t.done = true
		default:
			t.err = err
		}
	}
	n := copy(p, t.pending)
	t.pending = t.pending[n:]
	return n, nil
}
