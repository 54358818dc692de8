package mailstore

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on names, the same in every backend so that mail moves between
// them; they bound memory and index size.
const (
	MaxMailboxName   = 512 // bytes of a full mailbox name
	MaxMailboxLevels = 32  // hierarchy depth
	MaxAccountName   = 320 // RFC 5321 §4.5.3.1: 64 local + @ + 255 domain
)

// ParseMailboxName checks a mailbox name as a client gives it and returns its
// canonical form: "inbox" in any case, as the first level, becomes INBOX
// (RFC 9051 §5.1). It refuses, with ErrBadMailboxName, everything
// that is not a plain hierarchy of non-empty UTF-8 levels: empty levels
// (leading, trailing or doubled separators), "." and ".." levels, levels
// starting with '~', control and format characters, and the IMAP LIST
// wildcards '%' and '*' (RFC 9051 §6.3.9), which would make the name
// unlistable. Backends never use mailbox names as paths, so these rules are about
// sane names, not about safety.
func ParseMailboxName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty", ErrBadMailboxName)
	}
	if len(name) > MaxMailboxName {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrBadMailboxName, MaxMailboxName)
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: not UTF-8", ErrBadMailboxName)
	}
	for _, r := range name {
		switch {
		case r == '%' || r == '*':
			return "", fmt.Errorf("%w: contains wildcard %q", ErrBadMailboxName, r)
		case r == '\\':
			// Backslash starts IMAP flags and is a path separator on
			// some systems clients run on; no client needs it in names.
			return "", fmt.Errorf("%w: contains backslash", ErrBadMailboxName)
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), r == utf8.RuneError,
			r == '\u2028', r == '\u2029':
			return "", fmt.Errorf("%w: contains control character %U", ErrBadMailboxName, r)
		}
	}
	levels := strings.Split(name, string(Separator))
	if len(levels) > MaxMailboxLevels {
		return "", fmt.Errorf("%w: deeper than %d levels", ErrBadMailboxName, MaxMailboxLevels)
	}
	for i, l := range levels {
		switch {
		case l == "":
			return "", fmt.Errorf("%w: empty level", ErrBadMailboxName)
		case l == "." || l == "..":
			return "", fmt.Errorf("%w: level %q", ErrBadMailboxName, l)
		case l[0] == '~':
			return "", fmt.Errorf("%w: level starts with '~'", ErrBadMailboxName)
		case strings.TrimSpace(l) == "":
			return "", fmt.Errorf("%w: blank level", ErrBadMailboxName)
		}
		if i == 0 && strings.EqualFold(l, Inbox) {
			levels[0] = Inbox
		}
	}
	return strings.Join(levels, string(Separator)), nil
}

// ParentNames returns the proper ancestors of a canonical mailbox name,
// outermost first.
func ParentNames(name string) []string {
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] == Separator {
			out = append(out, name[:i])
		}
	}
	return out
}

// CheckAccountName validates an account name (a canonical address) and
// returns it lower-cased. It refuses what could not be an address.
func CheckAccountName(name string) (string, error) {
	if len(name) < 3 || len(name) > MaxAccountName {
		return "", fmt.Errorf("%w: length %d", ErrBadAccountName, len(name))
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: not UTF-8", ErrBadAccountName)
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) {
			return "", fmt.Errorf("%w: contains %U", ErrBadAccountName, r)
		}
	}
	at := strings.LastIndexByte(name, '@')
	if at <= 0 || at == len(name)-1 {
		return "", fmt.Errorf("%w: not an address", ErrBadAccountName)
	}
	domain := name[at+1:]
	if strings.ContainsAny(domain, `/\@"`) || domain[0] == '.' || strings.Contains(domain, "..") {
		return "", fmt.Errorf("%w: bad domain", ErrBadAccountName)
	}
	return strings.ToLower(name), nil
}
