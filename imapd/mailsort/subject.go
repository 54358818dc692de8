package mailsort

import (
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // non-UTF-8 encoded words
	"golang.org/x/text/unicode/norm"
)

var wordDecoder = mime.WordDecoder{CharsetReader: gomessage.CharsetReader}

// DecodeHeader decodes the RFC 2047 encoded words of a header value to
// UTF-8, leaving the value as it is where decoding fails, and turns
// invalid UTF-8 into U+FFFD.
func DecodeHeader(s string) string {
	if strings.Contains(s, "=?") {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			s = d
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// Casemap returns the form of s that i;unicode-casemap (RFC 5051)
// compares octet by octet: every character titlecased, decomposed (NFKD),
// and the decomposition titlecased again, so that "ﬁ" and "FI" agree.
func Casemap(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToUpper(s)
	}
	return strings.Map(unicode.ToTitle, norm.NFKD.String(strings.Map(unicode.ToTitle, s)))
}

// BaseSubject extracts the base subject of a raw Subject value (RFC 5256
// §2.1) and reports whether the subject marked a reply or forward (a
// "Re:"/"Fwd:" leader, a "(fwd)" trailer or a "[fwd: ...]" wrapper), which
// the REFERENCES algorithm asks (§3 step 5). The result is in Casemap form,
// ready for comparison.
func BaseSubject(raw string) (base string, replyOrFwd bool) {
	// (1) Decode, then tabs and continuations to spaces, runs of spaces to one.
	s := collapseSpace(DecodeHeader(raw))
	for {
		// (2) Trailers: "(fwd)" and white space, repeatedly.
		for {
			t := strings.TrimRight(s, " ")
			if len(t) >= 5 && strings.EqualFold(t[len(t)-5:], "(fwd)") {
				t = t[:len(t)-5]
				replyOrFwd = true
			}
			if t == s {
				break
			}
			s = t
		}
		// (3), (4), (5): leaders and blobs, until nothing changes.
		for {
			changed := false
			if t, ok := cutLeader(s); ok {
				s, changed, replyOrFwd = t, true, true
			} else if t := strings.TrimLeft(s, " "); t != s {
				s, changed = t, true
			}
			if t, ok := cutBlob(s); ok && t != "" {
				s, changed = t, true
			}
			if !changed {
				break
			}
		}
		// (6) "[fwd:" ... "]" wraps the whole subject.
		if len(s) >= 6 && strings.EqualFold(s[:5], "[fwd:") && s[len(s)-1] == ']' {
			s = s[5 : len(s)-1]
			replyOrFwd = true
			continue
		}
		break
	}
	return Casemap(s), replyOrFwd
}

// collapseSpace turns tabs, CR and LF into spaces and runs of spaces
// into one.
func collapseSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteByte(c)
	}
	return b.String()
}

// cutBlob removes a leading subj-blob: "[" *BLOBCHAR "]" *WSP.
func cutBlob(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return s, false
	}
	end := strings.IndexAny(s[1:], "[]")
	if end < 0 || s[1+end] != ']' {
		return s, false
	}
	return strings.TrimLeft(s[end+2:], " "), true
}

// cutLeader removes a leading subj-leader's reply part:
// *subj-blob subj-refwd, subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":".
func cutLeader(s string) (string, bool) {
	t := s
	for {
		u, ok := cutBlob(t)
		if !ok {
			break
		}
		t = u
	}
	switch {
	case hasPrefixFold(t, "re"):
		t = t[2:]
	case hasPrefixFold(t, "fwd"):
		t = t[3:]
	case hasPrefixFold(t, "fw"):
		t = t[2:]
	default:
		return s, false
	}
	t = strings.TrimLeft(t, " ")
	if u, ok := cutBlob(t); ok {
		t = u
	}
	if !strings.HasPrefix(t, ":") {
		return s, false
	}
	return t[1:], true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
