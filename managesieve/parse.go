package managesieve

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// Limits on client input.
const (
	// maxLine bounds one line of a command, literal contents excluded
	// (RFC 5804 sets none; a command is a verb and at most two short
	// strings, and long data comes as literals).
	maxLine = 8 << 10
	// maxString bounds every string that is not a script: names, SASL
	// responses, NOOP's tag. Names are at most 128 octets (RFC 5804 §1.6);
	// a PLAIN response with a 1 KiB password fits easily.
	maxString = 8 << 10
	// maxQuoted: RFC 5804 §4 limits a quoted string to 1024 octets
	// between the quotes; longer data must be a literal.
	maxQuoted = 1024
	// maxArgs: no command takes more than two strings.
	maxArgs = 2
	// maxCommandName: the longest verb is RENAMESCRIPT (12).
	maxCommandName = 16
	// maxLiteralDigits: a literal's length has at most 10 digits (it
	// fits in 32 bits, RFC 5804 §4 number).
	maxLiteralDigits = 10
)

// Parse outcomes. A *parseError leaves the stream in step (the whole
// command, literals included, was read); errFlood does not, and the
// connection must close.
var (
	// errFlood: a line or a literal beyond what we are willing to read
	// and throw away to stay in step with the client.
	errFlood = errors.New("managesieve: input too large to skip")
)

// parseError is a client mistake in one command. The command was read to
// its end, so the session can answer NO and go on. code is a response
// code for the NO ("QUOTA/MAXSIZE" for an oversized script literal).
type parseError struct {
	msg  string
	code string
}

func (e *parseError) Error() string { return e.msg }

var (
	errEmpty       = &parseError{msg: "empty command"}
	errLineTooLong = &parseError{msg: "line too long"}
	errSyntax      = &parseError{msg: "syntax error"}
	errBadQuoted   = &parseError{msg: "bad quoted string"}
	errQuotedLong  = &parseError{msg: "quoted string too long; send a literal"}
	errBadLiteral  = &parseError{msg: "bad literal"}
	errTooManyArgs = &parseError{msg: "too many arguments"}
	errStringLong  = &parseError{msg: "string too long"}
	errScriptLarge = &parseError{msg: "script is too large", code: "QUOTA/MAXSIZE"}
)

// argKind tells a string (quoted or literal) from an atom (a number).
type argKind uint8

const (
	argString argKind = iota
	argAtom
)

// arg is one argument of a command.
type arg struct {
	kind argKind
	val  []byte
}

// command is one parsed command.
type command struct {
	// name is the verb in upper case (RFC 5804 §4: case-insensitive).
	name string
	args []arg
	// size is the number of octets read for the command, literals
	// included.
	size int64
}

// reader reads commands and SASL responses from a client. It is bounded:
// lines are cut at maxLine, strings at maxString, script literals at
// maxScript, and it discards at most maxDiscard octets of refused input
// per command before it gives up (errFlood). arm, if set, is called before
// each line and each literal is read, so the caller can renew deadlines.
type reader struct {
	br         *bufio.Reader
	maxScript  int
	maxDiscard int64
	arm        func() error
	line       []byte // line assembly buffer
	discarded  int64  // refused octets skipped in this command
	size       int64  // octets read in this command
}

// scriptArg reports whether argument i of the command name is a script
// (PUTSCRIPT name script, CHECKSCRIPT script): those literals may be as
// large as a script, every other string maxString.
func scriptArg(name string, i int) bool {
	return name == "PUTSCRIPT" && i == 1 || name == "CHECKSCRIPT" && i == 0
}

// readCommand reads one command: a verb, then arguments (atoms, quoted
// strings, literals {n+} and {n}), then CRLF (RFC 5804 §4). Literals are
// read whatever happens to the command, so that the stream stays in step:
// a refused one is skipped up to maxDiscard octets in all.
func (r *reader) readCommand() (command, error) {
	r.discarded, r.size = 0, 0
	var (
		cmd  command
		perr *parseError
	)
	fail := func(e *parseError) {
		if perr == nil {
			perr = e
		}
	}
	first := true
	for {
		seg, tooLong, err := r.readLine()
		if err != nil {
			return command{}, err
		}
		if tooLong {
			fail(errLineTooLong)
			// The line may end in a literal's announcement: skip that
			// literal too, or its octets would be taken as commands.
			n, _, ok := trailingLiteral(seg)
			if !ok {
				break
			}
			if err := r.skip(n); err != nil {
				return command{}, err
			}
			continue
		}
		if first && len(bytes.TrimSpace(seg)) == 0 {
			fail(errEmpty)
			break
		}
		// Tokens of this segment. A literal ends the segment; the
		// command goes on in the next one.
		pos, lit, litN := 0, false, int64(0)
		for pos < len(seg) && perr == nil {
			c := seg[pos]
			switch {
			case c == ' ':
				pos++
			case first:
				end := pos
				for end < len(seg) && isAtomChar(seg[end]) {
					end++
				}
				if end == pos || end-pos > maxCommandName || end < len(seg) && seg[end] != ' ' {
					fail(errSyntax)
					break
				}
				cmd.name = strings.ToUpper(string(seg[pos:end]))
				pos = end
				first = false
			case c == '"':
				val, end, e := parseQuoted(seg, pos)
				if e != nil {
					fail(e)
					break
				}
				pos = end
				if len(cmd.args) == maxArgs {
					fail(errTooManyArgs)
					break
				}
				cmd.args = append(cmd.args, arg{kind: argString, val: val})
			case c == '{':
				n, start, ok := trailingLiteral(seg[pos:])
				if !ok || start != 0 {
					fail(errBadLiteral)
					// A literal announced at the end of the line
					// after the bad token is still skipped below.
					break
				}
				lit, litN, pos = true, n, len(seg)
			case isAtomChar(c):
				end := pos
				for end < len(seg) && isAtomChar(seg[end]) {
					end++
				}
				if end < len(seg) && seg[end] != ' ' {
					fail(errSyntax)
					break
				}
				if len(cmd.args) == maxArgs {
					fail(errTooManyArgs)
					break
				}
				cmd.args = append(cmd.args, arg{kind: argAtom, val: bytes.Clone(seg[pos:end])})
				pos = end
			default:
				fail(errSyntax)
			}
		}
		if perr != nil && !lit {
			// Stop tokenizing, but a literal announced at the end of
			// this line must still be skipped.
			if n, _, ok := trailingLiteral(seg); ok {
				lit, litN = true, n
			}
		}
		if !lit {
			break
		}
		limit := int64(maxString)
		if scriptArg(cmd.name, len(cmd.args)) {
			limit = int64(r.maxScript)
		}
		switch {
		case perr != nil:
			err = r.skip(litN)
		case len(cmd.args) == maxArgs:
			fail(errTooManyArgs)
			err = r.skip(litN)
		case litN > limit:
			if scriptArg(cmd.name, len(cmd.args)) {
				fail(errScriptLarge)
			} else {
				fail(errStringLong)
			}
			err = r.skip(litN)
		default:
			var val []byte
			val, err = r.readLiteral(litN)
			cmd.args = append(cmd.args, arg{kind: argString, val: val})
		}
		if err != nil {
			return command{}, err
		}
	}
	cmd.size = r.size
	if perr != nil {
		return command{size: r.size}, perr
	}
	return cmd, nil
}

// readResponse reads a client's SASL response: one string, quoted or
// literal, then CRLF (RFC 5804 §2.1). abort is true for "*", with or
// without quotes.
func (r *reader) readResponse() (val []byte, abort bool, err error) {
	r.discarded, r.size = 0, 0
	seg, tooLong, err := r.readLine()
	if err != nil {
		return nil, false, err
	}
	if tooLong {
		if n, _, ok := trailingLiteral(seg); ok {
			if err := r.skip(n); err != nil {
				return nil, false, err
			}
			if err := r.skipLine(); err != nil {
				return nil, false, err
			}
		}
		return nil, false, errLineTooLong
	}
	switch {
	case string(seg) == "*":
		return nil, true, nil
	case len(seg) > 0 && seg[0] == '"':
		val, end, perr := parseQuoted(seg, 0)
		if perr != nil {
			return nil, false, perr
		}
		if end != len(seg) {
			return nil, false, errSyntax
		}
		return val, string(val) == "*", nil
	}
	n, start, ok := trailingLiteral(seg)
	if !ok {
		return nil, false, errSyntax
	}
	if start != 0 || n > maxString {
		if err := r.skip(n); err != nil {
			return nil, false, err
		}
		if err := r.skipLine(); err != nil {
			return nil, false, err
		}
		if start != 0 {
			return nil, false, errSyntax
		}
		return nil, false, errStringLong
	}
	if val, err = r.readLiteral(n); err != nil {
		return nil, false, err
	}
	// The response ends with the line that follows the literal.
	seg, tooLong, err = r.readLine()
	if err != nil {
		return nil, false, err
	}
	if tooLong || len(seg) != 0 {
		return nil, false, errSyntax
	}
	return val, false, nil
}

// readLine reads one line, up to maxLine octets with its CRLF (a bare LF
// is accepted too), and strips the terminator. An overlong line is read
// to its end and thrown away (tooLong); its last octets come back so the
// caller can see whether it announced a literal. One that runs past
// maxDiscard is errFlood.
func (r *reader) readLine() (line []byte, tooLong bool, err error) {
	if r.arm != nil {
		if err := r.arm(); err != nil {
			return nil, false, err
		}
	}
	r.line = r.line[:0]
	n := 0
	for {
		frag, err := r.br.ReadSlice('\n')
		n += len(frag)
		r.size += int64(len(frag))
		r.line = append(r.line, frag...)
		if n > maxLine {
			tooLong = true
			// Keep only the tail, where a literal's announcement would be.
			if len(r.line) > 64 {
				r.line = append(r.line[:0], r.line[len(r.line)-64:]...)
			}
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if int64(n) > r.maxDiscard-r.discarded {
				return nil, false, errFlood
			}
			continue
		}
		if errors.Is(err, io.EOF) && n > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, false, err
	}
	if tooLong {
		r.discarded += int64(n)
		if r.discarded > r.maxDiscard {
			return nil, false, errFlood
		}
	}
	line = r.line[:len(r.line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, tooLong, nil
}

// skipLine reads and drops the rest of a command after a skipped literal.
func (r *reader) skipLine() error {
	for {
		seg, _, err := r.readLine()
		if err != nil {
			return err
		}
		n, _, ok := trailingLiteral(seg)
		if !ok {
			return nil
		}
		if err := r.skip(n); err != nil {
			return err
		}
	}
}

// readLiteral reads n octets (n is within a limit the caller checked).
func (r *reader) readLiteral(n int64) ([]byte, error) {
	if r.arm != nil {
		if err := r.arm(); err != nil {
			return nil, err
		}
	}
	buf := make([]byte, n)
	m, err := io.ReadFull(r.br, buf)
	r.size += int64(m)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// skip throws away a refused literal of n octets, or gives up with
// errFlood when that would take the command's discards past maxDiscard:
// the client then gets BYE rather than having its data read as commands.
func (r *reader) skip(n int64) error {
	if n > r.maxDiscard-r.discarded {
		return errFlood
	}
	if r.arm != nil {
		if err := r.arm(); err != nil {
			return err
		}
	}
	r.discarded += n
	m, err := r.br.Discard(int(n))
	r.size += int64(m)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// trailingLiteral parses a literal's announcement, "{" number ["+"] "}",
// at the end of seg (RFC 5804 §4: literal-c2s is {n+}; we take the
// synchronizing {n} as well and send no continuation for it, as there is
// none in ManageSieve). start is where the "{" is. A length too large for
// 32 bits counts as too large to skip.
func trailingLiteral(seg []byte) (n int64, start int, ok bool) {
	if len(seg) < 3 || seg[len(seg)-1] != '}' {
		return 0, 0, false
	}
	end := len(seg) - 1
	if seg[end-1] == '+' {
		end--
	}
	i := end
	for i > 0 && seg[i-1] >= '0' && seg[i-1] <= '9' {
		i--
	}
	if i == end || i == 0 || seg[i-1] != '{' {
		return 0, 0, false
	}
	if end-i > maxLiteralDigits {
		return 1 << 40, i - 1, true
	}
	for _, c := range seg[i:end] {
		n = n*10 + int64(c-'0')
	}
	return n, i - 1, true
}

// parseQuoted parses the quoted string starting at seg[pos] (a DQUOTE):
// UTF-8 without NUL, CR or LF, where a backslash escapes only DQUOTE and
// backslash (RFC 5804 §4 quoted, QUOTED-CHAR), at most maxQuoted octets.
// end is the index after the closing quote.
func parseQuoted(seg []byte, pos int) (val []byte, end int, err *parseError) {
	val = []byte{}
	for i := pos + 1; i < len(seg); i++ {
		c := seg[i]
		switch c {
		case '"':
			if !utf8.Valid(val) {
				return nil, 0, errBadQuoted
			}
			if i+1 < len(seg) && seg[i+1] != ' ' {
				return nil, 0, errSyntax
			}
			return val, i + 1, nil
		case '\\':
			i++
			if i == len(seg) || seg[i] != '"' && seg[i] != '\\' {
				return nil, 0, errBadQuoted
			}
			c = seg[i]
		case 0, '\r', '\n':
			return nil, 0, errBadQuoted
		}
		if len(val) == maxQuoted {
			return nil, 0, errQuotedLong
		}
		val = append(val, c)
	}
	return nil, 0, errBadQuoted // unterminated
}

// isAtomChar: command names and numbers are letters and digits.
func isAtomChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// parseNumber parses RFC 5804 §4 number: 1*DIGIT, at most 4294967295.
func parseNumber(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n <= 1<<32-1
}
