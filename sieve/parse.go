package sieve

import (
	"fmt"
	"strconv"
	"strings"
)

// Pos is a place in a script: line and column (in bytes), both from 1.
type Pos struct {
	Line, Column int
}

func (p Pos) String() string { return fmt.Sprintf("line %d, column %d", p.Line, p.Column) }

// Error is a compile error: where in the script, and what.
type Error struct {
	Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

func errAt(p Pos, format string, a ...any) *Error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, a...)}
}

// The syntax tree, RFC 5228 §8.2: a command or a test is an identifier,
// arguments, then tests (one, or a parenthesised list) and, for a
// command, a block or ";".
type node struct {
	name     string // lower case
	pos      Pos
	args     []arg
	tests    []*node
	testList bool // the tests came in parentheses
	block    []*node
	hasBlock bool
}

type argKind uint8

const (
	argTag argKind = iota
	argNumber
	argString // one string, not in brackets
	argList   // a bracketed string list
)

type arg struct {
	kind argKind
	pos  Pos
	tag  string // lower case, without the colon
	num  uint64
	strs []srcString
}

// srcString is a string as written, escapes resolved, with its position.
type srcString struct {
	s   string
	pos Pos
}

func (k argKind) String() string {
	switch k {
	case argTag:
		return "tag"
	case argNumber:
		return "number"
	case argString:
		return "string"
	}
	return "string list"
}

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tTag
	tNumber
	tString
	tPunct // one of ; , ( ) { } [ ]
)

type token struct {
	kind tokKind
	pos  Pos
	text string // identifier or tag name (lower case), string value, or the punctuation byte
	num  uint64
}

type lexer struct {
	src       []byte
	off       int
	line, col int
	peeked    *token
}

func (l *lexer) pos() Pos { return Pos{l.line, l.col} }

func (l *lexer) advance(n int) {
	for i := 0; i < n && l.off < len(l.src); i++ {
		if l.src[l.off] == '\n' {
			l.line++
			l.col = 1
		} else {
			l.col++
		}
		l.off++
	}
}

func (l *lexer) peek() (token, error) {
	if l.peeked != nil {
		return *l.peeked, nil
	}
	t, err := l.scan()
	if err != nil {
		return t, err
	}
	l.peeked = &t
	return t, nil
}

func (l *lexer) next() (token, error) {
	if l.peeked != nil {
		t := *l.peeked
		l.peeked = nil
		return t, nil
	}
	return l.scan()
}

func isAlpha(c byte) bool  { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isIdentC(c byte) bool { return isAlpha(c) || isDigit(c) }

// skipSpace skips white space and comments (RFC 5228 §2.3).
func (l *lexer) skipSpace() error {
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			l.advance(1)
		case c == '#':
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.advance(1)
			}
		case c == '/' && l.off+1 < len(l.src) && l.src[l.off+1] == '*':
			p := l.pos()
			end := strings.Index(string(l.src[l.off+2:]), "*/")
			if end < 0 {
				return errAt(p, "unterminated comment")
			}
			l.advance(end + 4)
		default:
			return nil
		}
	}
	return nil
}

func (l *lexer) scan() (token, error) {
	if err := l.skipSpace(); err != nil {
		return token{}, err
	}
	p := l.pos()
	if l.off >= len(l.src) {
		return token{kind: tEOF, pos: p}, nil
	}
	c := l.src[l.off]
	switch {
	case strings.IndexByte(";,(){}[]", c) >= 0:
		l.advance(1)
		return token{kind: tPunct, pos: p, text: string(c)}, nil
	case c == ':':
		l.advance(1)
		if l.off >= len(l.src) || !isAlpha(l.src[l.off]) {
			return token{}, errAt(p, "expected a tag name after ':'")
		}
		return token{kind: tTag, pos: p, text: l.ident()}, nil
	case isAlpha(c):
		id := l.ident()
		if id == "text" && l.off < len(l.src) && l.src[l.off] == ':' {
			l.advance(1)
			s, err := l.multiline(p)
			return token{kind: tString, pos: p, text: s}, err
		}
		return token{kind: tIdent, pos: p, text: id}, nil
	case isDigit(c):
		start := l.off
		for l.off < len(l.src) && isDigit(l.src[l.off]) {
			l.advance(1)
		}
		n, err := strconv.ParseUint(string(l.src[start:l.off]), 10, 64)
		if err != nil || n > maxNumber {
			return token{}, errAt(p, "number too large")
		}
		if l.off < len(l.src) {
			var mult uint64
			switch l.src[l.off] {
			case 'K', 'k':
				mult = 1 << 10
			case 'M', 'm':
				mult = 1 << 20
			case 'G', 'g':
				mult = 1 << 30
			}
			if mult != 0 {
				l.advance(1)
				if n > maxNumber/mult {
					return token{}, errAt(p, "number too large")
				}
				n *= mult
			}
		}
		if l.off < len(l.src) && isIdentC(l.src[l.off]) {
			return token{}, errAt(p, "bad number")
		}
		return token{kind: tNumber, pos: p, num: n}, nil
	case c == '"':
		s, err := l.quoted(p)
		return token{kind: tString, pos: p, text: s}, err
	}
	return token{}, errAt(p, "unexpected character %q", rune(c))
}

// maxNumber bounds numbers: Sieve's are at least 32-bit unsigned (RFC
// 5228 §2.4.1); ours are 63-bit so every sum stays in an int64.
const maxNumber = 1<<63 - 1

func (l *lexer) ident() string {
	start := l.off
	for l.off < len(l.src) && isIdentC(l.src[l.off]) {
		l.advance(1)
	}
	return strings.ToLower(string(l.src[start:l.off]))
}

// quoted reads a quoted string (RFC 5228 §2.4.2): \" and \\ stand for
// themselves, any other backslash is dropped.
func (l *lexer) quoted(p Pos) (string, error) {
	l.advance(1)
	var b strings.Builder
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch c {
		case '"':
			l.advance(1)
			return b.String(), nil
		case '\\':
			if l.off+1 >= len(l.src) {
				return "", errAt(p, "unterminated string")
			}
			b.WriteByte(l.src[l.off+1])
			l.advance(2)
		default:
			b.WriteByte(c)
			l.advance(1)
		}
	}
	return "", errAt(p, "unterminated string")
}

// multiline reads a text: string (RFC 5228 §2.4.2): after "text:",
// blanks and an optional comment to the line end, then lines up to one
// holding a lone "."; a line starting with ".." loses one dot.
func (l *lexer) multiline(p Pos) (string, error) {
	for l.off < len(l.src) && (l.src[l.off] == ' ' || l.src[l.off] == '\t') {
		l.advance(1)
	}
	if l.off < len(l.src) && l.src[l.off] == '#' {
		for l.off < len(l.src) && l.src[l.off] != '\n' {
			l.advance(1)
		}
	}
	if l.off < len(l.src) && l.src[l.off] == '\r' {
		l.advance(1)
	}
	if l.off >= len(l.src) || l.src[l.off] != '\n' {
		return "", errAt(p, "text: must be followed by a line end")
	}
	l.advance(1)
	var b strings.Builder
	for l.off < len(l.src) {
		end := l.off
		for end < len(l.src) && l.src[end] != '\n' {
			end++
		}
		line := l.src[l.off:end]
		nl := end < len(l.src)
		content := line
		if len(content) > 0 && content[len(content)-1] == '\r' {
			content = content[:len(content)-1]
		}
		if string(content) == "." {
			l.advance(end - l.off)
			if nl {
				l.advance(1)
			}
			return b.String(), nil
		}
		if len(line) > 0 && line[0] == '.' {
			line = line[1:]
		}
		b.Write(line)
		if nl {
			b.WriteByte('\n')
		}
		l.advance(end - l.off)
		if !nl {
			break
		}
		l.advance(1)
	}
	return "", errAt(p, "unterminated text: string")
}

// parser builds the tree; depth bounds nesting of blocks and tests.
type parser struct {
	lex      lexer
	depth    int
	maxDepth int
}

func parse(src []byte, maxDepth int) ([]*node, error) {
	p := &parser{lex: lexer{src: src, line: 1, col: 1}, maxDepth: maxDepth}
	cmds, err := p.commands(false)
	if err != nil {
		return nil, err
	}
	return cmds, nil
}

func (p *parser) commands(inBlock bool) ([]*node, error) {
	var out []*node
	for {
		t, err := p.lex.peek()
		if err != nil {
			return nil, err
		}
		switch {
		case t.kind == tEOF && !inBlock:
			return out, nil
		case t.kind == tEOF:
			return nil, errAt(t.pos, "missing '}'")
		case t.kind == tPunct && t.text == "}" && inBlock:
			p.lex.next()
			return out, nil
		case t.kind != tIdent:
			return nil, errAt(t.pos, "expected a command, found %s", describe(t))
		}
		n, err := p.command()
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
}

func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of script"
	case tIdent:
		return "identifier " + strconv.Quote(t.text)
	case tTag:
		return "tag :" + t.text
	case tNumber:
		return "number"
	case tString:
		return "string"
	}
	return strconv.Quote(t.text)
}

func (p *parser) enter(pos Pos) error {
	p.depth++
	if p.depth > p.maxDepth {
		return errAt(pos, "nesting deeper than %d", p.maxDepth)
	}
	return nil
}

func (p *parser) command() (*node, error) {
	t, _ := p.lex.next()
	n := &node{name: t.text, pos: t.pos}
	if err := p.arguments(n); err != nil {
		return nil, err
	}
	t, err := p.lex.next()
	if err != nil {
		return nil, err
	}
	switch {
	case t.kind == tPunct && t.text == ";":
	case t.kind == tPunct && t.text == "{":
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		n.hasBlock = true
		n.block, err = p.commands(true)
		p.depth--
		if err != nil {
			return nil, err
		}
	default:
		return nil, errAt(t.pos, "expected ';' or '{' after %s, found %s", n.name, describe(t))
	}
	return n, nil
}

// arguments reads a command's or test's arguments and its tests.
func (p *parser) arguments(n *node) error {
	for {
		t, err := p.lex.peek()
		if err != nil {
			return err
		}
		switch {
		case t.kind == tTag:
			p.lex.next()
			n.args = append(n.args, arg{kind: argTag, pos: t.pos, tag: t.text})
		case t.kind == tNumber:
			p.lex.next()
			n.args = append(n.args, arg{kind: argNumber, pos: t.pos, num: t.num})
		case t.kind == tString:
			p.lex.next()
			n.args = append(n.args, arg{kind: argString, pos: t.pos, strs: []srcString{{t.text, t.pos}}})
		case t.kind == tPunct && t.text == "[":
			p.lex.next()
			a := arg{kind: argList, pos: t.pos}
			for {
				s, err := p.lex.next()
				if err != nil {
					return err
				}
				if s.kind != tString {
					return errAt(s.pos, "expected a string in the list, found %s", describe(s))
				}
				a.strs = append(a.strs, srcString{s.text, s.pos})
				s, err = p.lex.next()
				if err != nil {
					return err
				}
				if s.kind == tPunct && s.text == "]" {
					break
				}
				if s.kind != tPunct || s.text != "," {
					return errAt(s.pos, "expected ',' or ']' in the string list, found %s", describe(s))
				}
			}
			n.args = append(n.args, a)
		case t.kind == tIdent:
			if err := p.enter(t.pos); err != nil {
				return err
			}
			tn, err := p.test()
			p.depth--
			if err != nil {
				return err
			}
			n.tests = []*node{tn}
			return nil
		case t.kind == tPunct && t.text == "(":
			p.lex.next()
			if err := p.enter(t.pos); err != nil {
				return err
			}
			n.testList = true
			for {
				s, err := p.lex.peek()
				if err != nil {
					return err
				}
				if s.kind != tIdent {
					return errAt(s.pos, "expected a test, found %s", describe(s))
				}
				tn, err := p.test()
				if err != nil {
					return err
				}
				n.tests = append(n.tests, tn)
				s, err = p.lex.next()
				if err != nil {
					return err
				}
				if s.kind == tPunct && s.text == ")" {
					break
				}
				if s.kind != tPunct || s.text != "," {
					return errAt(s.pos, "expected ',' or ')' in the test list, found %s", describe(s))
				}
			}
			p.depth--
			return nil
		default:
			return nil
		}
	}
}

func (p *parser) test() (*node, error) {
	t, _ := p.lex.next()
	n := &node{name: t.text, pos: t.pos}
	if err := p.arguments(n); err != nil {
		return nil, err
	}
	return n, nil
}
