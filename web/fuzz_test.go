package web

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseForms feeds the form readers (quota, alias targets, device
// names, out-of-office) arbitrary input: they must not panic, and what
// they accept must be within their bounds.
func FuzzParseForms(f *testing.F) {
	for _, s := range []string{"", "2GiB", "500MB", "unlimited", "-1", "1e99", "a, b\nc", "Phone", "2026-12-01", "\x00", "365"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if n, ok := parseQuota(a); ok && n < 0 {
			t.Errorf("parseQuota(%q) = %d", a, n)
		}
		for _, target := range splitTargets(a) {
			if target == "" || strings.ContainsAny(target, ", \n") {
				t.Errorf("splitTargets(%q) gave %q", a, target)
			}
		}
		if checkName(a) == "" && (a == "" || utf8.RuneCountInString(a) > 64) {
			t.Errorf("checkName accepted %q", a)
		}
		form := url.Values{"subject": {a}, "message": {b}, "from": {a}, "until": {b}, "days": {b}}
		r := httptest.NewRequest("POST", "/", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.ParseForm()
		v, _, msg := parseVacation(&request{r: r}, 1024)
		if msg == "" && (v.Subject == "" || len(v.Message) > 1024 || strings.ContainsAny(v.Subject, "\r\n") ||
			!v.Start.IsZero() && !v.End.IsZero() && !v.Start.Before(v.End)) {
			t.Errorf("parseVacation accepted %+v", v)
		}
	})
}
