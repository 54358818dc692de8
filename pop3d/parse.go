package pop3d

import (
	"errors"
	"strings"
)

// Limits on client input.
const (
	// maxCommandLine is the default and minimum for Options.MaxLineLength,
	// CRLF included (RFC 2449 §4: command lines are limited to 255 octets,
	// including the terminating CRLF).
	maxCommandLine = 255
	// maxSASLLine bounds one base64 line a client sends during AUTH. RFC
	// 5034 §4 exempts client responses from the 255-octet limit; PLAIN
	// with a long password stays far below this.
	maxSASLLine = 8 << 10
	// maxDiscard is how much of an overlong line we read and throw away to
	// stay in step with the client before we give up and close.
	maxDiscard = 64 << 10
	// maxKeyword: RFC 2449 §3 keywords are three or four characters.
	maxKeyword = 4
	// maxArgs: no POP3 command we know takes more than two arguments.
	maxArgs = 2
)

// Parse errors. They become "-ERR" replies and count as protocol errors.
var (
	errEmptyCommand = errors.New("empty command line")
	errBadChar      = errors.New("command contains control characters")
	errBadKeyword   = errors.New("malformed command keyword")
	errTooManyArgs  = errors.New("too many arguments")
)

// command is one parsed client command line.
type command struct {
	// verb is the keyword in upper case (RFC 2449 §3: case-insensitive).
	verb string
	// args are the space-separated arguments. RFC 1939 separates them by a
	// single SP; we also accept runs of spaces and a trailing space, which
	// some clients send.
	args []string
	// rest is everything after the keyword and the one SP that follows it,
	// unsplit: PASS takes it whole, since a password may contain spaces
	// (RFC 1939 §7, PASS discussion).
	rest string
}

// parseCommand parses one command line without its line terminator. It
// rejects control characters (NUL included) anywhere on the line. Octets
// above 0x7F are allowed in arguments, so UTF-8 passwords work.
func parseCommand(line []byte) (command, error) {
	if len(line) == 0 {
		return command{}, errEmptyCommand
	}
	for _, c := range line {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return command{}, errBadChar
		}
	}
	s := string(line)
	verb, rest, hasRest := strings.Cut(s, " ")
	if len(verb) == 0 || len(verb) > maxKeyword {
		return command{}, errBadKeyword
	}
	for i := 0; i < len(verb); i++ {
		c := verb[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return command{}, errBadKeyword
		}
	}
	cmd := command{verb: strings.ToUpper(verb)}
	if !hasRest {
		return cmd, nil
	}
	cmd.rest = rest
	for _, f := range strings.Split(rest, " ") {
		if f == "" {
			continue
		}
		if len(cmd.args) == maxArgs && cmd.verb != "PASS" {
			return command{}, errTooManyArgs
		}
		if len(cmd.args) < maxArgs {
			cmd.args = append(cmd.args, f)
		}
	}
	return cmd, nil
}

// parseMsgNum parses a message number: decimal digits only, at least 1
// (RFC 1939 §5: message numbers start at 1).
func parseMsgNum(s string) (int, bool) {
	if len(s) == 0 || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= 1
}

// parseLineCount parses TOP's non-negative line count (RFC 1939 §7). Counts
// beyond what any message has are capped rather than refused.
func parseLineCount(s string) (int64, bool) {
	if len(s) == 0 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1<<40 {
			n = n*10 + int64(c-'0')
		}
	}
	return n, true
}
