package imapd

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
)

// IMAP URLs (RFC 5092) as CATENATE names a message or a section of one
// (RFC 4469 §5): the forms that name one message part, no URLAUTH.
//
//	imap://user[;AUTH=x]@host[:port]/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]
//	/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]
//	;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]    (in the selected mailbox)
//
// Keywords match in any case; the mailbox, user and section are
// percent-decoded (the mailbox as UTF-8, RFC 5092 §3.2).

// Bounds of what parseIMAPURL accepts (RFC 5092 sets none).
const (
	// maxURLLength: the library refuses literal URLs over 4 KiB anyway.
	maxURLLength = 4096
	// maxSectionDepth bounds the part numbers of a section.
	maxSectionDepth = 100
	// maxSectionFields bounds the names of HEADER.FIELDS (.NOT).
	maxSectionFields = 100
)

var errBadIMAPURL = errors.New("imapd: not an IMAP URL naming a message part")

// imapURL is a parsed URL part of CATENATE.
type imapURL struct {
	absolute bool   // imap://…: user and host name this server and user
	user     string // decoded enc-user; "" when the URL names none
	host     string
	// mailbox is the decoded mailbox name; "" means the selected mailbox.
	mailbox     string
	uidValidity uint32 // 0 when not given
	uid         imap.UID
	// section is the section and partial range, as FETCH BODY[…]<…>
	// would ask for them.
	section imap.FetchItemBodySection
}

// parseIMAPURL parses s, in bounded time and memory whatever it holds.
func parseIMAPURL(s string) (*imapURL, error) {
	if len(s) > maxURLLength {
		return nil, errBadIMAPURL
	}
	u := &imapURL{}
	rest := s
	if hasPrefixFold(rest, "imap://") {
		u.absolute = true
		rest = rest[len("imap://"):]
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return nil, errBadIMAPURL
		}
		if err := u.parseAuthority(rest[:i]); err != nil {
			return nil, err
		}
		rest = rest[i:]
	}
	switch {
	case strings.HasPrefix(rest, "//"):
		return nil, errBadIMAPURL // a network-path reference without "imap:"
	case strings.HasPrefix(rest, "/"):
		// enc-mailbox has no ';' (bchar), so the mailbox ends at the first.
		rest = rest[1:]
		i := strings.IndexByte(rest, ';')
		if i < 0 {
			return nil, errBadIMAPURL
		}
		mbox := rest[:i]
		rest = rest[i:]
		if hasPrefixFold(rest, ";UIDVALIDITY=") {
			n, r, err := number(rest[len(";UIDVALIDITY="):], true)
			if err != nil || !strings.HasPrefix(r, "/") {
				return nil, errBadIMAPURL
			}
			u.uidValidity = n
			rest = r[1:]
		} else if strings.HasSuffix(mbox, "/") {
			mbox = mbox[:len(mbox)-1]
		} else {
			return nil, errBadIMAPURL
		}
		name, err := pctDecode(mbox)
		if err != nil || name == "" || !utf8.ValidString(name) {
			return nil, errBadIMAPURL
		}
		u.mailbox = name
	case u.absolute:
		return nil, errBadIMAPURL
	}
	// rest: ";UID=n" and what follows (a relative URL starts here).
	if !hasPrefixFold(rest, ";UID=") {
		return nil, errBadIMAPURL
	}
	uid, rest, err := number(rest[len(";UID="):], true)
	if err != nil {
		return nil, err
	}
	u.uid = imap.UID(uid)
	if hasPrefixFold(rest, "/;SECTION=") {
		rest = rest[len("/;SECTION="):]
		end := strings.Index(rest, "/;")
		if end < 0 {
			end = len(rest)
		}
		text, err := pctDecode(rest[:end])
		if err != nil {
			return nil, err
		}
		if err := parseSection(text, &u.section); err != nil {
			return nil, err
		}
		rest = rest[end:]
	}
	if hasPrefixFold(rest, "/;PARTIAL=") {
		off, r, err := number(rest[len("/;PARTIAL="):], false)
		if err != nil {
			return nil, err
		}
		p := &imap.SectionPartial{Offset: int64(off), Size: math.MaxInt64 - int64(off)}
		if strings.HasPrefix(r, ".") {
			n, r2, err := number(r[1:], true)
			if err != nil {
				return nil, err
			}
			p.Size = int64(n)
			r = r2
		}
		u.section.Partial = p
		rest = r
	}
	// Anything else (URLAUTH's ;EXPIRE= and ;URLAUTH= among it) is refused.
	if rest != "" {
		return nil, errBadIMAPURL
	}
	return u, nil
}

// parseAuthority reads [iuserinfo "@"] host [":" port].
func (u *imapURL) parseAuthority(a string) error {
	if at := strings.LastIndexByte(a, '@'); at >= 0 {
		info := a[:at]
		a = a[at+1:]
		user := info
		if i := indexFold(info, ";AUTH="); i >= 0 {
			user = info[:i]
			if len(info) == i+len(";AUTH=") {
				return errBadIMAPURL
			}
		}
		dec, err := pctDecode(user)
		if err != nil {
			return err
		}
		u.user = dec
	}
	host := a
	if strings.HasPrefix(a, "[") {
		i := strings.IndexByte(a, ']')
		if i < 0 {
			return errBadIMAPURL
		}
		host, a = a[1:i], a[i+1:]
	} else if i := strings.IndexByte(a, ':'); i >= 0 {
		host, a = a[:i], a[i:]
	} else {
		a = ""
	}
	if a != "" {
		port, ok := strings.CutPrefix(a, ":")
		if !ok || port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return errBadIMAPURL
		}
	}
	if host == "" || strings.ContainsAny(host, " /;@%\"") {
		return errBadIMAPURL
	}
	u.host = host
	return nil
}

// parseSection reads an IMAP section-spec (RFC 9051 §9) into item:
// part numbers, then HEADER, HEADER.FIELDS[.NOT] (names), TEXT or MIME.
func parseSection(text string, item *imap.FetchItemBodySection) error {
	rest := text
	for rest != "" && rest[0] >= '0' && rest[0] <= '9' {
		n, r, err := number(rest, true)
		if err != nil || len(item.Part) == maxSectionDepth {
			return errBadIMAPURL
		}
		item.Part = append(item.Part, int(n))
		rest = r
		if rest == "" {
			return nil
		}
		if rest[0] != '.' {
			return errBadIMAPURL
		}
		rest = rest[1:]
		if rest == "" {
			return errBadIMAPURL
		}
	}
	if rest == "" {
		return nil
	}
	kw, list, hasList := strings.Cut(rest, " ")
	switch strings.ToUpper(kw) {
	case "HEADER":
		item.Specifier = imap.PartSpecifierHeader
	case "TEXT":
		item.Specifier = imap.PartSpecifierText
	case "MIME":
		if len(item.Part) == 0 {
			return errBadIMAPURL
		}
		item.Specifier = imap.PartSpecifierMIME
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		item.Specifier = imap.PartSpecifierHeader
		if !hasList {
			return errBadIMAPURL
		}
		names, err := headerList(list)
		if err != nil {
			return err
		}
		if len(kw) == len("HEADER.FIELDS") {
			item.HeaderFields = names
		} else {
			item.HeaderFieldsNot = names
		}
		return nil
	default:
		return errBadIMAPURL
	}
	if hasList {
		return errBadIMAPURL
	}
	return nil
}

// headerList reads "(" name *(SP name) ")"; names are atoms.
func headerList(s string) ([]string, error) {
	if len(s) < 3 || s[0] != '(' || s[len(s)-1] != ')' {
		return nil, errBadIMAPURL
	}
	var names []string
	for _, f := range strings.Split(s[1:len(s)-1], " ") {
		if f == "" || len(names) == maxSectionFields || strings.ContainsFunc(f, func(r rune) bool {
			return r <= ' ' || r >= 0x7f || r == ':' || r == '(' || r == ')' || r == '"'
		}) {
			return nil, errBadIMAPURL
		}
		names = append(names, f)
	}
	return names, nil
}

// number reads a 32-bit decimal number (nz: not zero) at the start of s.
func number(s string, nz bool) (uint32, string, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 10 {
		return 0, s, errBadIMAPURL
	}
	n, err := strconv.ParseUint(s[:i], 10, 32)
	if err != nil || (nz && n == 0) {
		return 0, s, errBadIMAPURL
	}
	return uint32(n), s[i:], nil
}

// pctDecode undoes %XX escapes; control characters are refused, raw or
// escaped.
func pctDecode(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) {
				return "", errBadIMAPURL
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", errBadIMAPURL
			}
			c = hi<<4 | lo
			i += 2
		}
		if c < 0x20 || c == 0x7f {
			return "", errBadIMAPURL
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}
