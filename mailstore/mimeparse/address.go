package mimeparse

import (
	"strings"

	"github.com/emersion/go-imap/v2"
)

// MaxAddresses bounds the addresses (and group markers) ParseAddressList
// returns for one field; the rest are dropped.
const MaxAddresses = 1000

// Placeholders for the parts of an address a field left out, as IMAP
// servers commonly write them, so that a client always gets a mailbox and
// a host (an address without a host would read as a group marker).
const (
	MissingMailbox = "MISSING_MAILBOX"
	MissingDomain  = "MISSING_DOMAIN"
)

// ParseAddressList reads an address-list field value (RFC 5322 §3.4) the
// tolerant way IMAP clients expect of ENVELOPE: groups are kept as a start
// marker (Mailbox = the group's name, Host "") and an end marker (all
// empty), as RFC 3501 §7.4.2 writes them; comments and folding whitespace
// are dropped from addresses, and a comment stands in for a missing
// display name (`user@host (Real Name)`); a route (`<@a,@b:user@host>`)
// is kept in Route; a missing local part or domain is MissingMailbox or
// MissingDomain. Names are the field's own text (quoted strings unquoted,
// encoded words left encoded). Nothing a field contains makes it fail:
// what cannot be read as an address is skipped up to the next comma.
func ParseAddressList(value string) []imap.Address {
	p := addrParser{toks: tokenize(value)}
	var out []imap.Address
	inGroup := false
	for !p.done() && len(out) < MaxAddresses {
		switch t := p.peek(); {
		case t.is(','):
			p.next()
			continue
		case t.is(';'):
			p.next()
			if inGroup {
				out = append(out, imap.Address{})
				inGroup = false
			}
			continue
		}
		phrase, comment := p.words()
		switch t := p.peek(); {
		case t.is(':') && !inGroup && strings.TrimSpace(strings.Join(phrase, " ")) != "":
			// (A group without a name could not be told from a group end.)
			p.next()
			out = append(out, imap.Address{Mailbox: strings.Join(phrase, " ")})
			inGroup = true
			continue
		case t.is('<'):
			p.next()
			route, local, domain := p.angleAddr()
			if c := p.trailingComment(); comment == "" {
				comment = c
			}
			name := strings.Join(phrase, " ")
			if name == "" {
				name = comment
			}
			addr := address(name, local, domain)
			addr.Route = route
			out = append(out, addr)
		case t.is('@'):
			p.next()
			domain, c := p.domain()
			if c2 := p.trailingComment(); c2 != "" {
				c = c2
			}
			if c != "" {
				comment = c
			}
			out = append(out, address(comment, strings.Join(phrase, ""), domain))
		default:
			if len(phrase) > 0 {
				// A bare word: a local part without a domain.
				out = append(out, address(comment, strings.Join(phrase, ""), ""))
			}
		}
		p.skipToSeparator()
	}
	if inGroup && len(out) < MaxAddresses {
		out = append(out, imap.Address{})
	}
	return out
}

func address(name, local, domain string) imap.Address {
	if local == "" {
		local = MissingMailbox
	}
	if domain == "" {
		domain = MissingDomain
	}
	return imap.Address{Name: name, Mailbox: local, Host: domain}
}

// token is a word (atom, quoted string or domain literal), a comment or
// one special character.
type token struct {
	kind    byte // 'w' word, 'q' quoted string, 'c' comment, or the special itself
	text    string
	spaceB4 bool // whitespace or a comment came before it
}

func (t token) is(special byte) bool { return t.kind == special }

const specials = "<>@,;:.[]"

// tokenize splits a field value into tokens. Unbalanced quotes, comments
// and brackets end at the end of the value.
func tokenize(v string) []token {
	var toks []token
	space := false
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			space = true
			i++
		case c == '(':
			depth, j := 0, i
			var b strings.Builder
			for ; j < len(v); j++ {
				ch := v[j]
				if ch == '\\' && j+1 < len(v) {
					j++
					b.WriteByte(v[j])
					continue
				}
				if ch == '(' {
					depth++
					if depth == 1 {
						continue
					}
				} else if ch == ')' {
					depth--
					if depth == 0 {
						j++
						break
					}
				}
				b.WriteByte(ch)
			}
			toks = append(toks, token{kind: 'c', text: strings.TrimSpace(b.String()), spaceB4: space})
			space = true
			i = j
		case c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(v) && v[j] != '"'; j++ {
				if v[j] == '\\' && j+1 < len(v) {
					j++
				}
				if v[j] != '\r' && v[j] != '\n' {
					b.WriteByte(v[j])
				}
			}
			toks = append(toks, token{kind: 'q', text: b.String(), spaceB4: space})
			space = false
			i = j + 1
		case c == '[':
			j := strings.IndexByte(v[i:], ']')
			if j < 0 {
				j = len(v) - i - 1
			}
			toks = append(toks, token{kind: 'w', text: v[i : i+j+1], spaceB4: space})
			space = false
			i += j + 1
		case strings.IndexByte(specials, c) >= 0:
			toks = append(toks, token{kind: c, text: v[i : i+1], spaceB4: space})
			space = false
			i++
		default:
			j := i
			for j < len(v) && strings.IndexByte(specials+" \t\r\n(\"", v[j]) < 0 {
				j++
			}
			toks = append(toks, token{kind: 'w', text: v[i:j], spaceB4: space})
			space = false
			i = j
		}
	}
	return toks
}

type addrParser struct {
	toks []token
	pos  int
}

func (p *addrParser) done() bool { return p.pos >= len(p.toks) }

func (p *addrParser) peek() token {
	if p.done() {
		return token{}
	}
	return p.toks[p.pos]
}

func (p *addrParser) next() token {
	t := p.peek()
	p.pos++
	return t
}

// words reads a phrase or a local part: words and dots up to a special
// that ends it. It returns the words for a phrase (dots glued to their
// neighbours, so a local part joined with "" is as written) and the last
// comment among them.
func (p *addrParser) words() (words []string, comment string) {
	for !p.done() {
		t := p.peek()
		switch t.kind {
		case 'w', 'q':
			if len(words) > 0 && strings.HasSuffix(words[len(words)-1], ".") && !t.spaceB4 {
				words[len(words)-1] += t.text
			} else {
				words = append(words, t.text)
			}
		case '.':
			if len(words) > 0 {
				words[len(words)-1] += "."
			} else {
				words = append(words, ".")
			}
		case 'c':
			comment = t.text
		default:
			return words, comment
		}
		p.next()
	}
	return words, comment
}

// angleAddr reads `[route:] local@domain >` after '<'.
func (p *addrParser) angleAddr() (route, local, domain string) {
	if p.peek().is('@') {
		// A route: @a,@b: — up to the colon.
		var r strings.Builder
		for !p.done() && !p.peek().is(':') && !p.peek().is('>') {
			if t := p.next(); t.kind != 'c' {
				r.WriteString(t.text)
			}
		}
		if p.peek().is(':') {
			p.next()
			route = r.String()
		}
	}
	var b strings.Builder
	for !p.done() {
		t := p.peek()
		if t.kind == 'w' || t.kind == 'q' || t.kind == '.' {
			b.WriteString(t.text)
		} else if t.kind != 'c' {
			break
		}
		p.next()
	}
	local = b.String()
	if p.peek().is('@') {
		p.next()
		domain, _ = p.domain()
	}
	for !p.done() && !p.peek().is('>') && !p.peek().is(',') && !p.peek().is(';') {
		p.next()
	}
	if p.peek().is('>') {
		p.next()
	}
	return route, local, domain
}

// domain reads a dot-atom or a domain literal, dropping whitespace and
// comments; it returns the last comment too.
func (p *addrParser) domain() (domain, comment string) {
	var b strings.Builder
	for !p.done() {
		t := p.peek()
		switch t.kind {
		case 'w', '.':
			if t.spaceB4 && b.Len() > 0 && t.kind == 'w' && !strings.HasSuffix(b.String(), ".") {
				// "host (comment) junk": the domain has ended.
				return b.String(), comment
			}
			b.WriteString(t.text)
		case 'c':
			comment = t.text
		default:
			return b.String(), comment
		}
		p.next()
	}
	return b.String(), comment
}

// trailingComment reads the comments after an address and returns the
// last one.
func (p *addrParser) trailingComment() string {
	c := ""
	for p.peek().kind == 'c' {
		c = p.next().text
	}
	return c
}

// skipToSeparator drops what is left of a malformed address, up to the
// next comma or group end.
func (p *addrParser) skipToSeparator() {
	for !p.done() && !p.peek().is(',') && !p.peek().is(';') {
		p.next()
	}
}
