package managesieve

import (
	"bufio"
	"strconv"
	"strings"
	"unicode/utf8"
)

// status is the kind of a response line (RFC 5804 §4 response-ok,
// response-nobye).
type status uint8

const (
	statusOK status = iota
	statusNO
	statusBYE
)

// reply is what a handler returns; only the session loop writes it.
type reply struct {
	status status
	// code is the response code inside the parentheses, rendered
	// ("NONEXISTENT", "QUOTA/MAXSIZE", `TAG "x"`); "" for none.
	code string
	// text is the human-readable string; "" for none.
	text string
	// data goes out before the status line: capability lines, the script
	// list, a script as a literal. Built with appendString.
	data []byte
	// cont makes this a SASL challenge: data is the whole response and
	// no status line follows (RFC 5804 §2.1 continue-response).
	cont bool

	// protoErr counts this reply against the client's error budget.
	protoErr bool
	// quit closes the connection once the reply is flushed.
	quit bool
	// startTLS upgrades the connection once the reply is flushed.
	startTLS bool
}

func okReply(text string) reply { return reply{text: text} }

func noReply(code, text string) reply { return reply{status: statusNO, code: code, text: text} }

// protoError is a NO for a client mistake: it counts against the
// client's error budget.
func protoError(text string) reply { return reply{status: statusNO, text: text, protoErr: true} }

// Recurring replies.
var (
	replyUnknownCommand = protoError("unknown command")
	replyNeedAuth       = protoError("authenticate first")
	replyAuthed         = protoError("already authenticated")
	replySyntax         = protoError("syntax error")
	replyNotSecure      = reply{status: statusNO, code: "ENCRYPT-NEEDED", text: "authentication needs TLS; use STARTTLS first", protoErr: true}
	replyTempFail       = noReply("TRYLATER", "internal server error, try again later")
	replyShuttingDown   = reply{status: statusBYE, code: "TRYLATER", text: "server shutting down, try again later", quit: true}
	replyTooManyErrors  = reply{status: statusBYE, text: "too many bad commands, closing connection", quit: true}
	replyIdle           = reply{status: statusBYE, text: "autologout; idle for too long", quit: true}
	replyFlood          = reply{status: statusBYE, text: "input too large, closing connection", quit: true}
)

// codeString renders a response code that carries a string (TAG, SASL).
func codeString(name, s string) string {
	return string(appendString([]byte(name+" "), s))
}

// writeReply formats r onto w.
func writeReply(w *bufio.Writer, r reply) error {
	w.Write(r.data)
	if r.cont {
		return nil
	}
	b := make([]byte, 0, 64+len(r.text))
	switch r.status {
	case statusOK:
		b = append(b, "OK"...)
	case statusNO:
		b = append(b, "NO"...)
	default:
		b = append(b, "BYE"...)
	}
	if r.code != "" {
		b = append(b, " ("...)
		b = append(b, r.code...)
		b = append(b, ')')
	}
	if r.text != "" {
		b = append(b, ' ')
		b = appendString(b, r.text)
	}
	b = append(b, "\r\n"...)
	_, err := w.Write(b)
	return err
}

// appendString appends s as a quoted string when RFC 5804 §4 allows
// (UTF-8 without NUL, CR or LF, at most 1024 octets; DQUOTE and backslash
// escaped), and as a literal {n} otherwise.
func appendString(b []byte, s string) []byte {
	if len(s) <= maxQuoted && utf8.ValidString(s) && !strings.ContainsAny(s, "\x00\r\n") {
		b = append(b, '"')
		for i := 0; i < len(s); i++ {
			if s[i] == '"' || s[i] == '\\' {
				b = append(b, '\\')
			}
			b = append(b, s[i])
		}
		return append(b, '"')
	}
	return appendLiteral(b, []byte(s))
}

// appendLiteral appends data as a server literal (literal-s2c).
func appendLiteral(b, data []byte) []byte {
	b = append(b, '{')
	b = strconv.AppendInt(b, int64(len(data)), 10)
	b = append(b, "}\r\n"...)
	return append(b, data...)
}
