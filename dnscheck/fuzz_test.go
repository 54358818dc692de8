package dnscheck

import (
	"strings"
	"testing"
)

// FuzzTagValue: the record readers never panic, and a value comes back
// without spaces.
func FuzzTagValue(f *testing.F) {
	for _, s := range []string{"v=DKIM1; k=rsa; p=AB CD", "v=DMARC1;p=none", `name. IN TXT "a" "b"`, `"unterminated`, "v=spf1 mx -all", ";;=;"} {
		f.Add(s, "p")
	}
	f.Fuzz(func(t *testing.T, txt, tag string) {
		if v := tagValue(txt, tag); strings.ContainsAny(v, " \t\n") {
			t.Errorf("tagValue(%q, %q) = %q", txt, tag, v)
		}
		if z := zoneText(txt); len(z) > len(txt) {
			t.Errorf("zoneText(%q) = %q", txt, z)
		}
		isTag(txt, tag)
	})
}
