package indexrow

import (
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// The system flags' bits in a message row's flags column.
const (
	FlagSeen = 1 << iota
	FlagAnswered
	FlagFlagged
	FlagDeleted
	FlagDraft
	FlagAll = FlagSeen | FlagAnswered | FlagFlagged | FlagDeleted | FlagDraft
)

// Limits on keywords, so one message's flags stay small.
const (
	MaxKeywords   = 64
	MaxKeywordLen = 100
)

var SystemFlags = [...]struct {
	bit  int64
	flag imap.Flag
}{
	{FlagSeen, imap.FlagSeen},
	{FlagAnswered, imap.FlagAnswered},
	{FlagFlagged, imap.FlagFlagged},
	{FlagDeleted, imap.FlagDeleted},
	{FlagDraft, imap.FlagDraft},
}

// SharedFlags holds one flag list per system-flag mask. Messages without
// keywords (nearly all) share these, so a Snapshot of a large mailbox does
// not allocate a slice per message. Each is cut to its length, so an append
// by a caller copies instead of writing into the shared array.
var SharedFlags = func() [FlagAll + 1][]imap.Flag {
	var out [FlagAll + 1][]imap.Flag
	for m := range out {
		l := SystemFlagList(int64(m), 0)
		out[m] = l[:len(l):len(l)]
	}
	return out
}()

func SystemFlagList(mask int64, extra int) []imap.Flag {
	l := make([]imap.Flag, 0, 5+extra)
	for _, f := range SystemFlags {
		if mask&f.bit != 0 {
			l = append(l, f.flag)
		}
	}
	return l
}

// FlagList turns stored flags into the list callers see: system flags in a
// fixed order, then keywords.
func FlagList(mask int64, keywords string) []imap.Flag {
	mask &= FlagAll
	if keywords == "" {
		return SharedFlags[mask]
	}
	kws := strings.Fields(keywords)
	l := SystemFlagList(mask, len(kws))
	for _, k := range kws {
		l = append(l, imap.Flag(k))
	}
	return l
}

// FlagSet is a parsed set of flags to store.
type FlagSet struct {
	Mask     int64
	Keywords []string // deduplicated case-insensitively, first spelling kept
}

// ParseFlags splits flags into system bits and keywords. \Recent and unknown
// backslash flags cannot be stored and are ignored (RFC 9051 §2.3.2); so are
// keywords that are not IMAP atoms.
func ParseFlags(flags []imap.Flag) FlagSet {
	var fs FlagSet
	for _, f := range flags {
		s := string(f)
		if strings.HasPrefix(s, `\`) {
			for _, sf := range SystemFlags {
				if strings.EqualFold(s, string(sf.flag)) {
					fs.Mask |= sf.bit
				}
			}
			continue
		}
		if !ValidKeyword(s) {
			continue
		}
		dup := false
		for _, k := range fs.Keywords {
			if strings.EqualFold(k, s) {
				dup = true
				break
			}
		}
		if !dup && len(fs.Keywords) < MaxKeywords {
			fs.Keywords = append(fs.Keywords, s)
		}
	}
	return fs
}

// ValidKeyword reports whether s is an IMAP atom (RFC 9051 §9 flag-keyword):
// no controls, spaces or atom-specials.
func ValidKeyword(s string) bool {
	if s == "" || len(s) > MaxKeywordLen {
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
func ApplyFlags(mask int64, keywords string, op FlagOp, fs FlagSet) (int64, string) {
	cur := strings.Fields(keywords)
	switch op {
	case OpSet:
		return fs.Mask, JoinKeywords(fs.Keywords)
	case OpAdd:
		mask |= fs.Mask
		for _, k := range fs.Keywords {
			if !ContainsFold(cur, k) && len(cur) < MaxKeywords {
				cur = append(cur, k)
			}
		}
		return mask, JoinKeywords(cur)
	default: // OpRemove
		mask &^= fs.Mask
		out := cur[:0]
		for _, k := range cur {
			if !ContainsFold(fs.Keywords, k) {
				out = append(out, k)
			}
		}
		return mask, JoinKeywords(out)
	}
}

type FlagOp int

const (
	OpAdd FlagOp = iota
	OpRemove
	OpSet
)

func ContainsFold(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// JoinKeywords stores keywords sorted, so equal sets compare equal.
func JoinKeywords(kws []string) string {
	if len(kws) == 0 {
		return ""
	}
	s := append([]string(nil), kws...)
	sort.Strings(s)
	return strings.Join(s, " ")
}

// HasFlag reports whether stored flags contain f (case-insensitive).
func HasFlag(mask int64, keywords string, f imap.Flag) bool {
	s := string(f)
	if strings.HasPrefix(s, `\`) {
		for _, sf := range SystemFlags {
			if strings.EqualFold(s, string(sf.flag)) {
				return mask&sf.bit != 0
			}
		}
		return false
	}
	return ContainsFold(strings.Fields(keywords), s)
}
