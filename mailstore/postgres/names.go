package postgres

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/posthouse/posthouse/mailstore"
)

// Limits on names, the same as the maildir backend's, so that mail moves
// between backends: they bound memory and row size.
const (
	maxMailboxName   = 512 // bytes of a full mailbox name
	maxMailboxLevels = 32  // hierarchy depth
	maxAccountName   = 320 // RFC 5321 §4.5.3.1: 64 local + @ + 255 domain
)

// parseMailboxName checks a mailbox name as a client gives it and returns its
// canonical form: "inbox" in any case, as the first level, becomes INBOX
// (RFC 9051 §5.1). It refuses, with mailstore.ErrBadMailboxName, everything
// that is not a plain hierarchy of non-empty UTF-8 levels: empty levels
// (leading, trailing or doubled separators), "." and ".." levels, levels
// starting with '~', control and format characters, and the IMAP LIST
// wildcards '%' and '*' (RFC 9051 §6.3.9), which would make the name
// unlistable. The rules are the maildir backend's.
func parseMailboxName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty", mailstore.ErrBadMailboxName)
	}
	if len(name) > maxMailboxName {
		return "", fmt.Errorf("%w: longer than %d bytes", mailstore.ErrBadMailboxName, maxMailboxName)
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: not UTF-8", mailstore.ErrBadMailboxName)
	}
	for _, r := range name {
		switch {
		case r == '%' || r == '*':
			return "", fmt.Errorf("%w: contains wildcard %q", mailstore.ErrBadMailboxName, r)
		case r == '\\':
			// Backslash starts IMAP flags and is a path separator on
			// some systems clients run on; no client needs it in names.
			return "", fmt.Errorf("%w: contains backslash", mailstore.ErrBadMailboxName)
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), r == utf8.RuneError,
			r == '\u2028', r == '\u2029':
			return "", fmt.Errorf("%w: contains control character %U", mailstore.ErrBadMailboxName, r)
		}
	}
	levels := strings.Split(name, string(mailstore.Separator))
	if len(levels) > maxMailboxLevels {
		return "", fmt.Errorf("%w: deeper than %d levels", mailstore.ErrBadMailboxName, maxMailboxLevels)
	}
	for i, l := range levels {
		switch {
		case l == "":
			return "", fmt.Errorf("%w: empty level", mailstore.ErrBadMailboxName)
		case l == "." || l == "..":
			return "", fmt.Errorf("%w: level %q", mailstore.ErrBadMailboxName, l)
		case l[0] == '~':
			return "", fmt.Errorf("%w: level starts with '~'", mailstore.ErrBadMailboxName)
		case strings.TrimSpace(l) == "":
			return "", fmt.Errorf("%w: blank level", mailstore.ErrBadMailboxName)
		}
		if i == 0 && strings.EqualFold(l, mailstore.Inbox) {
			levels[0] = mailstore.Inbox
		}
	}
	return strings.Join(levels, string(mailstore.Separator)), nil
}

// parentNames returns the proper ancestors of a canonical mailbox name,
// outermost first.
func parentNames(name string) []string {
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] == mailstore.Separator {
			out = append(out, name[:i])
		}
	}
	return out
}

// checkAccountName validates an account name (a canonical address) and
// returns it lower-cased. It refuses what could not be an address.
func checkAccountName(name string) (string, error) {
	if len(name) < 3 || len(name) > maxAccountName {
		return "", fmt.Errorf("%w: length %d", mailstore.ErrBadAccountName, len(name))
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: not UTF-8", mailstore.ErrBadAccountName)
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) {
			return "", fmt.Errorf("%w: contains %U", mailstore.ErrBadAccountName, r)
		}
	}
	at := strings.LastIndexByte(name, '@')
	if at <= 0 || at == len(name)-1 {
		return "", fmt.Errorf("%w: not an address", mailstore.ErrBadAccountName)
	}
	domain := name[at+1:]
	if strings.ContainsAny(domain, `/\@"`) || domain[0] == '.' || strings.Contains(domain, "..") {
		return "", fmt.Errorf("%w: bad domain", mailstore.ErrBadAccountName)
	}
	return strings.ToLower(name), nil
}
