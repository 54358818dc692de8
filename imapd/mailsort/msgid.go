package mailsort

import "strings"

// maxMsgIDs bounds how many IDs one field yields; References fields of
// real threads hold a few dozen, and the store already bounds the header.
const maxMsgIDs = 1000

// MsgIDs returns the message IDs of a Message-ID, In-Reply-To or
// References value, without their angle brackets, in order: every
// "<local@domain>" whose inside has an "@" and no white space, angle
// bracket or control character. Text between them (comments, phrases
// some mailers put in In-Reply-To) is skipped. When more than maxMsgIDs
// are present, the last ones are kept: a message's parent is the last.
func MsgIDs(s string) []string {
	var ids []string
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			break
		}
		s = s[i+1:]
		j := strings.IndexAny(s, "<>")
		if j < 0 {
			break
		}
		if s[j] == '<' {
			s = s[j:]
			continue
		}
		if id := s[:j]; validMsgID(id) {
			ids = append(ids, id)
			if len(ids) > maxMsgIDs {
				ids = ids[1:]
			}
		}
		s = s[j+1:]
	}
	return ids
}

// FirstMsgID is MsgIDs(s)[0], or "".
func FirstMsgID(s string) string {
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			return ""
		}
		s = s[i+1:]
		j := strings.IndexAny(s, "<>")
		if j < 0 {
			return ""
		}
		if s[j] == '>' && validMsgID(s[:j]) {
			return s[:j]
		}
		s = s[j:]
	}
}

func validMsgID(id string) bool {
	at := strings.IndexByte(id, '@')
	if at <= 0 || at == len(id)-1 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}
