package sieve

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
)

type dateTest struct {
	current  bool
	header   *str
	part     *str
	zone     *str
	origZone bool
	index    int
	last     bool
	keys     []*str
	m        *matchSpec
}

var dateParts = []string{"year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601", "std11", "zone", "weekday"}

func validDatePart(p string) bool {
	for _, d := range dateParts {
		if strings.EqualFold(d, p) {
			return true
		}
	}
	return false
}

// parseZone reads RFC 5260 §4.1's time-zone: ("+" / "-") 4DIGIT.
func parseZone(s string) (*time.Location, bool) {
	if len(s) != 5 || (s[0] != '+' && s[0] != '-') {
		return nil, false
	}
	for i := 1; i < 5; i++ {
		if !isDigit(s[i]) {
			return nil, false
		}
	}
	h := int(s[1]-'0')*10 + int(s[2]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
	if m > 59 {
		return nil, false
	}
	off := (h*60 + m) * 60
	if s[0] == '-' {
		off = -off
	}
	return time.FixedZone(s, off), true
}

// datePart formats one date-part of t (RFC 5260 §4.2).
func datePart(t time.Time, part string) string {
	switch strings.ToLower(part) {
	case "year":
		return fmt.Sprintf("%04d", t.Year())
	case "month":
		return fmt.Sprintf("%02d", int(t.Month()))
	case "day":
		return fmt.Sprintf("%02d", t.Day())
	case "date":
		return t.Format("2006-01-02")
	case "julian":
		// Modified Julian Day of the date in t's zone.
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		mjd := d.Sub(time.Date(1858, 11, 17, 0, 0, 0, 0, time.UTC)).Hours() / 24
		return fmt.Sprintf("%d", int64(mjd))
	case "hour":
		return fmt.Sprintf("%02d", t.Hour())
	case "minute":
		return fmt.Sprintf("%02d", t.Minute())
	case "second":
		return fmt.Sprintf("%02d", t.Second())
	case "time":
		return t.Format("15:04:05")
	case "iso8601":
		return t.Format("2006-01-02T15:04:05Z07:00")
	case "std11":
		return t.Format("Mon, 02 Jan 2006 15:04:05 -0700")
	case "zone":
		return t.Format("-0700")
	case "weekday":
		return fmt.Sprintf("%d", int(t.Weekday()))
	}
	return ""
}

// headerDate extracts a date-time from a field value: the whole value,
// or what follows its last ";" (Received, RFC 5260 §4).
func headerDate(v string) (time.Time, bool) {
	if i := strings.LastIndexByte(v, ';'); i >= 0 {
		v = v[i+1:]
	}
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 200 {
		return time.Time{}, false
	}
	t, err := mail.ParseDate(v)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

func (t *dateTest) eval(r *run) (bool, error) {
	var when time.Time
	if t.current {
		when = r.env.Now
	} else {
		fs := r.fields(strings.ToLower(r.expand(t.header)))
		if t.index > 0 {
			fs = pickIndex(fs, t.index, t.last)
		} else if len(fs) > 1 {
			fs = fs[:1] // RFC 5260 §4: the first field only
		}
		ok := false
		if len(fs) == 1 {
			when, ok = headerDate(fs[0].decodedValue())
		}
		if !ok {
			if t.m.typ == mCount {
				return r.matchCount(t.m, 0, t.keys)
			}
			return false, nil
		}
	}
	if t.m.typ == mCount {
		return r.matchCount(t.m, 1, t.keys)
	}
	switch {
	case t.zone != nil:
		loc, ok := parseZone(r.expand(t.zone))
		if !ok {
			return false, nil
		}
		when = when.In(loc)
	case t.origZone && !t.current:
	default:
		loc := r.env.Now.Location()
		when = when.In(loc)
	}
	part := r.expand(t.part)
	if !validDatePart(part) {
		return false, nil
	}
	return r.matchKeys(t.m, []string{datePart(when, part)}, t.keys)
}
