package postgres

import (
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Limits on keywords, so one message's flags stay small.
const (
	maxKeywords   = 64
	maxKeywordLen = 100
)

var systemFlags = [...]struct {
	bit  int64
	flag imap.Flag
}{
	{flagSeen, imap.FlagSeen},
	{flagAnswered, imap.FlagAnswered},
	{flagFlagged, imap.FlagFlagged},
	{flagDeleted, imap.FlagDeleted},
	{flagDraft, imap.FlagDraft},
}

// sharedFlags holds one flag list per system-flag mask. Messages without
// keywords (nearly all) share these, so a Snapshot of a large mailbox does
// not allocate a slice per message. Each is cut to its length, so an append
// by a caller copies instead of writing into the shared array.
var sharedFlags = func() [flagAll + 1][]imap.Flag {
	var out [flagAll + 1][]imap.Flag
	for m := range out {
		l := systemFlagList(int64(m), 0)
		out[m] = l[:len(l):len(l)]
	}
	return out
}()

func systemFlagList(mask int64, extra int) []imap.Flag {
	l := make([]imap.Flag, 0, 5+extra)
	for _, f := range systemFlags {
		if mask&f.bit != 0 {
			l = append(l, f.flag)
		}
	}
	return l
}

// flagList turns stored flags into the list callers see: system flags in a
// fixed order, then keywords.
func flagList(mask int64, keywords string) []imap.Flag {
	mask &= flagAll
	if keywords == "" {
		return sharedFlags[mask]
	}
	kws := strings.Fields(keywords)
	l := systemFlagList(mask, len(kws))
	for _, k := range kws {
		l = append(l, imap.Flag(k))
	}
	return l
}

// flagSet is a parsed set of flags to store.
type flagSet struct {
	mask     int64
	keywords []string // deduplicated case-insensitively, first spelling kept
}

// parseFlags splits flags into system bits and keywords. \Recent and unknown
// backslash flags cannot be stored and are ignored (RFC 9051 §2.3.2); so are
// keywords that are not IMAP atoms.
func parseFlags(flags []imap.Flag) flagSet {
	var fs flagSet
	for _, f := range flags {
		s := string(f)
		if strings.HasPrefix(s, `\`) {
			for _, sf := range systemFlags {
				if strings.EqualFold(s, string(sf.flag)) {
					fs.mask |= sf.bit
				}
			}
			continue
		}
		if !validKeyword(s) {
			continue
		}
		dup := false
		for _, k := range fs.keywords {
			if strings.EqualFold(k, s) {
				dup = true
				break
			}
		}
		if !dup && len(fs.keywords) < maxKeywords {
			fs.keywords = append(fs.keywords, s)
		}
	}
	return fs
}

// validKeyword reports whether s is an IMAP atom (RFC 9051 §9 flag-keyword):
// no controls, spaces or atom-specials.
func validKeyword(s string) bool {
	if s == "" || len(s) > maxKeywordLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// apply computes a message's flags after op.
func applyFlags(mask int64, keywords string, op flagOp, fs flagSet) (int64, string) {
	cur := strings.Fields(keywords)
	switch op {
	case opSet:
		return fs.mask, joinKeywords(fs.keywords)
	case opAdd:
		mask |= fs.mask
		for _, k := range fs.keywords {
			if !containsFold(cur, k) && len(cur) < maxKeywords {
				cur = append(cur, k)
			}
		}
		return mask, joinKeywords(cur)
	default: // opRemove
		mask &^= fs.mask
		out := cur[:0]
		for _, k := range cur {
			if !containsFold(fs.keywords, k) {
				out = append(out, k)
			}
		}
		return mask, joinKeywords(out)
	}
}

type flagOp int

const (
	opAdd flagOp = iota
	opRemove
	opSet
)

func containsFold(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// joinKeywords stores keywords sorted, so equal sets compare equal.
func joinKeywords(kws []string) string {
	if len(kws) == 0 {
		return ""
	}
	s := append([]string(nil), kws...)
	sort.Strings(s)
	return strings.Join(s, " ")
}

// hasFlag reports whether stored flags contain f (case-insensitive).
func hasFlag(mask int64, keywords string, f imap.Flag) bool {
	s := string(f)
	if strings.HasPrefix(s, `\`) {
		for _, sf := range systemFlags {
			if strings.EqualFold(s, string(sf.flag)) {
				return mask&sf.bit != 0
			}
		}
		return false
	}
	return containsFold(strings.Fields(keywords), s)
}
