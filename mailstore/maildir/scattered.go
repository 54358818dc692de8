package maildir

import (
	"strconv"
	"strings"
)

// A client's set often names messages scattered over the mailbox ("1,4,7:9,
// 12,…": imaptest's stress FETCHes and STOREs, a client fetching the
// messages a search found). eachInRanges ran its statement once per range,
// and under imaptest's stress load those statements were the largest part
// of a FETCH's server time. A set of several ranges naming at most
// scatteredMax UIDs is therefore run as one statement, the UIDs passed as
// a JSON array and matched through json_each, which SQLite answers with a
// primary-key lookup per UID.
const scatteredMax = 1000

// scatteredForm rewrites a statement written for one range ("uid BETWEEN
// ? AND ?", or with numbered parameters "uid BETWEEN ?2 AND ?3") into its
// one-statement form, keeping the parameters in place: the first takes
// the JSON array and the second a 0. ok is false when q has no such
// condition.
func scatteredForm(q string) (string, bool) {
	for _, f := range [][2]string{
		{"uid BETWEEN ? AND ?", "uid IN (SELECT value FROM json_each(?)) AND ? = 0"},
		{"uid BETWEEN ?2 AND ?3", "uid IN (SELECT value FROM json_each(?2)) AND ?3 = 0"},
	} {
		if strings.Count(q, f[0]) == 1 {
			return strings.Replace(q, f[0], f[1], 1), true
		}
	}
	return q, false
}

// scatteredUIDs is the JSON array of the UIDs in ranges when they are
// several ranges naming at most scatteredMax UIDs.
func scatteredUIDs(ranges []uidRange) (string, bool) {
	if len(ranges) < 2 {
		return "", false
	}
	n := 0
	for _, r := range ranges {
		n += int(r.hi-r.lo) + 1
		if n > scatteredMax || r.hi < r.lo {
			return "", false
		}
	}
	b := make([]byte, 0, n*6+2)
	b = append(b, '[')
	for _, r := range ranges {
		for u := r.lo; ; u++ {
			if len(b) > 1 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(u), 10)
			if u == r.hi {
				break
			}
		}
	}
	return string(append(b, ']')), true
}
