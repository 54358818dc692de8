package sieve

import (
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Comparators (RFC 4790, RFC 5228 §2.7.3).
type comparator uint8

const (
	cmpCasemap comparator = iota // i;ascii-casemap, the default
	cmpOctet                     // i;octet
	cmpNumeric                   // i;ascii-numeric
)

// Match types (RFC 5228 §2.7.1, RFC 5231, the regex draft).
type matchType uint8

const (
	mIs matchType = iota
	mContains
	mMatches
	mRegex
	mValue
	mCount
)

// Relational operators (RFC 5231 §5).
type relOp uint8

const (
	relGT relOp = iota
	relGE
	relLT
	relLE
	relEQ
	relNE
)

var relOps = map[string]relOp{"gt": relGT, "ge": relGE, "lt": relLT, "le": relLE, "eq": relEQ, "ne": relNE}

func (o relOp) holds(c int) bool {
	switch o {
	case relGT:
		return c > 0
	case relGE:
		return c >= 0
	case relLT:
		return c < 0
	case relLE:
		return c <= 0
	case relEQ:
		return c == 0
	}
	return c != 0
}

func foldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 32
				}
			}
			return string(b)
		}
	}
	return s
}

// numericValue is i;ascii-numeric's value: the leading digits, or
// positive infinity (ok false) for a string that does not start with one.
func numericValue(s string) (digits string, ok bool) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == 0 {
		return "", false
	}
	d := strings.TrimLeft(s[:i], "0")
	return d, true
}

// compare orders a and b under the comparator.
func (c comparator) compare(a, b string) int {
	switch c {
	case cmpOctet:
		return strings.Compare(a, b)
	case cmpCasemap:
		return strings.Compare(foldASCII(a), foldASCII(b))
	}
	da, oka := numericValue(a)
	db, okb := numericValue(b)
	switch {
	case !oka && !okb:
		return 0
	case !oka:
		return 1
	case !okb:
		return -1
	case len(da) != len(db):
		if len(da) < len(db) {
			return -1
		}
		return 1
	}
	return strings.Compare(da, db)
}

// key is one key of a match, prepared for its match type.
type key struct {
	lit  string         // the key; folded for i;ascii-casemap
	glob []globTok      // mMatches
	re   *regexp.Regexp // mRegex
}

type globKind uint8

const (
	gLit globKind = iota
	gOne
	gStar
)

type globTok struct {
	kind globKind
	lit  string
}

// compileGlob splits a :matches pattern: "*" any run, "?" one character,
// "\" quotes the next character (RFC 5228 §2.7.1).
func compileGlob(p string, fold bool) []globTok {
	var toks []globTok
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			s := lit.String()
			if fold {
				s = foldASCII(s)
			}
			toks = append(toks, globTok{kind: gLit, lit: s})
			lit.Reset()
		}
	}
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			if i+1 < len(p) {
				i++
				lit.WriteByte(p[i])
			}
		case '*':
			flush()
			toks = append(toks, globTok{kind: gStar})
		case '?':
			flush()
			toks = append(toks, globTok{kind: gOne})
		default:
			lit.WriteByte(p[i])
		}
	}
	flush()
	return toks
}

// globMatch matches s (folded already for i;ascii-casemap) against toks.
// Wildcards match as little as possible (RFC 5229 §3.2); the classic
// single-backtrack walk does that in O(len(s)·len(toks)). caps, when not
// nil, receives what each wildcard matched. octet makes "?" one byte
// rather than one UTF-8 character. Captures are cut from orig, the
// unfolded value (ASCII folding keeps every offset). steps counts work
// for the budget.
func globMatch(toks []globTok, s, orig string, octet bool, caps *[]string, steps *int64, limit int64) bool {
	type span struct{ from, to int }
	var spansBuf [16]span
	spans := spansBuf[:0]
	nw := 0
	for _, t := range toks {
		if t.kind != gLit {
			nw++
		}
	}
	if caps != nil {
		for len(spans) < len(toks) {
			spans = append(spans, span{})
		}
	}
	ti, si := 0, 0
	star, starSi := -1, 0
	for {
		*steps++
		if *steps > limit {
			return false // the caller reports ErrSteps
		}
		if ti == len(toks) {
			if si == len(s) {
				break
			}
		} else {
			t := toks[ti]
			switch t.kind {
			case gLit:
				*steps += int64(len(t.lit)) >> 5 // a long literal is compared byte by byte
				if strings.HasPrefix(s[si:], t.lit) {
					si += len(t.lit)
					ti++
					continue
				}
			case gOne:
				if si < len(s) {
					n := 1
					if !octet {
						_, n = utf8.DecodeRuneInString(s[si:])
					}
					if caps != nil {
						spans[ti] = span{si, si + n}
					}
					si += n
					ti++
					continue
				}
			case gStar:
				star, starSi = ti, si
				if caps != nil {
					spans[ti] = span{si, si}
				}
				ti++
				continue
			}
		}
		// Mismatch: let the last star take one more character.
		if star < 0 || starSi >= len(s) {
			return false
		}
		n := 1
		if !octet {
			_, n = utf8.DecodeRuneInString(s[starSi:])
		}
		starSi += n
		if caps != nil {
			spans[star].to = starSi
		}
		ti, si = star+1, starSi
	}
	if caps != nil {
		out := (*caps)[:0]
		out = append(out, orig)
		for i, t := range toks {
			if t.kind != gLit {
				out = append(out, orig[spans[i].from:spans[i].to])
			}
		}
		*caps = out
	}
	return true
}

// regexErr says why a :regex key was refused.
type regexErr string

func (e regexErr) Error() string { return string(e) }

// compileRegex compiles a :regex key. POSIX extended syntax is
// approximated by Go's RE2 syntax with leftmost-longest matching; RE2
// runs in time linear in the input, and the pattern's size and compiled
// program are bounded here.
func compileRegex(p string, fold bool, lim *Options) (*regexp.Regexp, error) {
	if len(p) > lim.MaxRegexBytes {
		return nil, regexErr("regular expression longer than " + strconv.Itoa(lim.MaxRegexBytes) + " bytes")
	}
	flags := syntax.Perl
	if fold {
		flags |= syntax.FoldCase
	}
	re, err := syntax.Parse(p, flags)
	if err != nil {
		return nil, regexErr("bad regular expression: " + err.Error())
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, regexErr("bad regular expression: " + err.Error())
	}
	if len(prog.Inst) > lim.MaxRegexProg {
		return nil, regexErr("regular expression too complex")
	}
	src := p
	if fold {
		src = "(?i)" + p
	}
	rx, err := regexp.Compile(src)
	if err != nil {
		return nil, regexErr("bad regular expression: " + err.Error())
	}
	rx.Longest()
	return rx, nil
}

// quoteWildcard escapes :matches wildcards (RFC 5229 §4.1 :quotewildcard).
func quoteWildcard(s string) string {
	if !strings.ContainsAny(s, `*?\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '*' || c == '?' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
