package milter

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/posthouse/posthouse/delivery"
)

// Replies for the milter's plain actions and for a milter that cannot be
// asked. SMFIR_REJECT and SMFIR_TEMPFAIL carry no text of their own.
var (
	replyReject   = delivery.Reply{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: "Message refused by content filter"}
	replyTempfail = delivery.Reply{Code: 451, Enhanced: [3]int{4, 7, 1}, Text: "Message deferred by content filter, try again later"}
	replyFailed   = delivery.Reply{Code: 451, Enhanced: [3]int{4, 7, 1}, Text: "Content filter unavailable, try again later"}
)

// maxReplyText bounds the text passed on from a milter's reply (delivery
// allows 400; the sender's bounce needs no more).
const maxReplyText = 200

// parseReply turns an SMFIR_REPLYCODE (code and text as go-milter splits
// them) into the reply the sender gets. The text may start with an
// enhanced code (RFC 3463) and may be multi-line ("550-5.7.1 a\r\n550
// 5.7.1 b", as smfi_setmlreply sends it): the lines are joined, each
// one's code prefix dropped. The code must be 4xx or 5xx; 421 becomes 451
// (the session goes on after a message is refused). What remains is
// printable ASCII, at most maxReplyText octets, "%%" read as "%"
// (smfi_setreply's escape). An enhanced code of the wrong class or an
// empty text gets the default for the class.
func parseReply(code int, text string) (delivery.Reply, error) {
	if code < 400 || code > 599 {
		return delivery.Reply{}, fmt.Errorf("milter replied with code %d, not 4xx or 5xx", code)
	}
	if code == 421 {
		code = 451
	}
	r := replyReject
	if code/100 == 4 {
		r = replyTempfail
	}
	r.Code = code
	class := strconv.Itoa(code / 100)

	var b strings.Builder
	gotEnhanced := false
	for i, line := range strings.FieldsFunc(text, func(c rune) bool { return c == '\r' || c == '\n' }) {
		if i > 0 {
			// Continuation lines repeat the code: "550-…" or "550 …".
			if len(line) >= 4 && isDigits(line[:3]) && (line[3] == '-' || line[3] == ' ') {
				line = line[4:]
			}
		}
		if enh, rest, ok := cutEnhanced(line, class); ok {
			if !gotEnhanced {
				r.Enhanced, gotEnhanced = enh, true
			}
			line = rest
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(line)
		if b.Len() > 4*maxReplyText {
			break
		}
	}
	if t := sanitizeText(b.String()); t != "" {
		r.Text = t
	}
	return r, nil
}

// cutEnhanced splits an enhanced status code (RFC 3463 §2: class.subject.
// detail, subject and detail up to three digits) of the given class off
// the start of s.
func cutEnhanced(s, class string) (enh [3]int, rest string, ok bool) {
	s = strings.TrimLeft(s, " ")
	word, rest, _ := strings.Cut(s, " ")
	parts := strings.Split(word, ".")
	if len(parts) != 3 || parts[0] != class {
		return enh, s, false
	}
	for i, p := range parts {
		if p == "" || len(p) > 3 || !isDigits(p) {
			return enh, s, false
		}
		enh[i], _ = strconv.Atoi(p)
	}
	return enh, rest, true
}

func isDigits(s string) bool {
	return s != "" && strings.IndexFunc(s, func(c rune) bool { return c < '0' || c > '9' }) < 0
}

// sanitizeText makes s safe for a reply line: "%%" becomes "%", bytes
// outside printable ASCII become '?', runs of spaces one, at most
// maxReplyText octets (cut at a space where there is one near the end).
func sanitizeText(s string) string {
	s = strings.ReplaceAll(s, "%%", "%")
	var b strings.Builder
	space := true // drop leading spaces
	for i := 0; i < len(s) && b.Len() < maxReplyText; i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		case c < 0x20 || c > 0x7e:
			c = '?'
		}
		b.WriteByte(c)
		space = false
	}
	out := b.String()
	if len(s) > len(out) && len(out) == maxReplyText {
		if i := strings.LastIndexByte(out, ' '); i > maxReplyText*3/4 {
			out = out[:i]
		}
	}
	return strings.TrimRight(out, " ")
}
