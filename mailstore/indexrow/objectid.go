package indexrow

import "strconv"

// EmailID is the OBJECTID (RFC 8474) of a message's emailid number: "E"
// and the number.
func EmailID(n int64) string { return "E" + strconv.FormatInt(n, 10) }

// ParseEmailID is EmailID's inverse; ok is false for anything it did not
// make.
func ParseEmailID(s string) (n int64, ok bool) {
	if len(s) < 2 || s[0] != 'E' || s[1] == '0' || s[1] == '+' || s[1] == '-' {
		return 0, false
	}
	n, err := strconv.ParseInt(s[1:], 10, 64)
	return n, err == nil && n > 0
}
