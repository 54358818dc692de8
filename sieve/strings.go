package sieve

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// decodeEncoded resolves "${hex: …}" and "${unicode: …}" (RFC 5228
// §2.4.2.4). A sequence that does not fit the syntax stays as written; a
// code point that is not a Unicode scalar value is an error.
func decodeEncoded(s string, p Pos) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		rest := s[i+2:]
		kind := ""
		if len(rest) >= 4 && strings.EqualFold(rest[:4], "hex:") {
			kind = "hex"
		} else if len(rest) >= 8 && strings.EqualFold(rest[:8], "unicode:") {
			kind = "unicode"
		}
		end := strings.IndexByte(rest, '}')
		if kind == "" || end < 0 {
			b.WriteString("${")
			s = rest
			continue
		}
		body := rest[len(kind)+1 : end]
		out, ok, err := decodeSeq(kind, body, p)
		if err != nil {
			return "", err
		}
		if !ok {
			b.WriteString("${")
			s = rest
			continue
		}
		b.WriteString(out)
		s = rest[end+1:]
	}
}

func decodeSeq(kind, body string, p Pos) (string, bool, error) {
	fields := strings.FieldsFunc(body, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' })
	if len(fields) == 0 {
		// "${hex:}" is valid and stands for nothing.
		return "", strings.TrimLeft(body, " \t\r\n") == "", nil
	}
	var b strings.Builder
	for _, f := range fields {
		switch kind {
		case "hex":
			if len(f)%2 != 0 || len(f) == 0 {
				return "", false, nil
			}
			for j := 0; j < len(f); j += 2 {
				v, err := strconv.ParseUint(f[j:j+2], 16, 8)
				if err != nil {
					return "", false, nil
				}
				b.WriteByte(byte(v))
			}
		case "unicode":
			if len(f) > 8 {
				f = strings.TrimLeft(f, "0")
				if len(f) > 8 {
					return "", false, errAt(p, "unicode code point out of range in ${unicode:…}")
				}
			}
			v, err := strconv.ParseUint(f, 16, 32)
			if err != nil {
				return "", false, nil
			}
			if v > utf8.MaxRune || v >= 0xD800 && v <= 0xDFFF {
				return "", false, errAt(p, "invalid unicode code point %X in ${unicode:…}", v)
			}
			b.WriteRune(rune(v))
		}
	}
	return b.String(), true, nil
}

// str is a string argument after encoded characters were resolved: raw
// is the text before variable expansion (what vacation's handle and
// include names use); parts is nil when the string holds no variable
// reference (a constant string, RFC 5229 §3).
type str struct {
	raw   string
	pos   Pos
	parts []strPart
}

type strPart struct {
	lit   string
	name  string // lower case variable name; "" for a literal
	match int    // match variable index, or -1
}

func (s *str) constant() bool { return s.parts == nil }

// parseVars splits s into literals and variable references (RFC 5229 §3).
// A "${" that does not start a valid reference is literal text.
func parseVars(s string, p Pos, ns func(string) bool) ([]strPart, error) {
	if !strings.Contains(s, "${") {
		return nil, nil
	}
	var parts []strPart
	lit := strings.Builder{}
	found := false
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			lit.WriteString(s)
			break
		}
		lit.WriteString(s[:i])
		rest := s[i+2:]
		end := strings.IndexByte(rest, '}')
		name := ""
		if end >= 0 {
			name = rest[:end]
		}
		kind := varNameKind(name)
		if end < 0 || kind == 0 {
			lit.WriteString("${")
			s = rest
			continue
		}
		found = true
		if lit.Len() > 0 {
			parts = append(parts, strPart{lit: lit.String(), match: -1})
			lit.Reset()
		}
		if kind == 1 {
			digits := strings.TrimLeft(name, "0")
			n := 0
			if digits != "" {
				v, err := strconv.Atoi(digits)
				if err != nil || len(digits) > 3 || v > maxMatchIndex {
					return nil, errAt(p, "match variable ${%s} is out of range (0 to %d)", name, maxMatchIndex)
				}
				n = v
			}
			parts = append(parts, strPart{match: n})
		} else {
			lname := strings.ToLower(name)
			if dot := strings.IndexByte(lname, '.'); dot >= 0 && !ns(lname[:dot]) {
				return nil, errAt(p, "unknown variable namespace in ${%s}", name)
			}
			parts = append(parts, strPart{name: lname, match: -1})
		}
		s = rest[end+1:]
	}
	if !found {
		return nil, nil
	}
	if lit.Len() > 0 {
		parts = append(parts, strPart{lit: lit.String(), match: -1})
	}
	return parts, nil
}

// maxMatchIndex is the highest match variable (RFC 5229 §6 asks for 1 to
// 9 at least; a higher reference is a compile error).
const maxMatchIndex = 9

// varNameKind says whether name is a match variable (1), a variable name
// (2, identifiers separated by dots) or neither (0).
func varNameKind(name string) int {
	if name == "" || len(name) > maxVarName {
		return 0
	}
	digits := true
	for i := 0; i < len(name); i++ {
		if !isDigit(name[i]) {
			digits = false
			break
		}
	}
	if digits {
		return 1
	}
	for _, part := range strings.Split(name, ".") {
		if !validIdent(part) {
			return 0
		}
	}
	return 2
}

// maxVarName bounds a variable name (RFC 5229 §6: at least 32).
const maxVarName = 128

func validIdent(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdentC(s[i]) {
			return false
		}
	}
	return true
}

// truncUTF8 cuts s to at most n bytes on a character boundary.
func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
