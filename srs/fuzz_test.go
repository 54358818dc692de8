package srs

import (
	"strings"
	"testing"
)

// FuzzParseSRS feeds Reverse arbitrary addresses (nothing may panic, and
// what it accepts must be an address), and checks that whatever Forward
// makes of an input, Reverse gives back.
func FuzzParseSRS(f *testing.F) {
	r, _ := newTest(f, "mx.a.test", testKey)
	for _, s := range []string{
		"sender@c.test",
		"SRS0=ABCDEF=AB=c.test=x@mx.a.test",
		"srs0=abcdef=ab=c.test=x@MX.A.TEST",
		"SRS1=ABCDEF=mx.b.test==HHHH=TT=c.test=x@mx.a.test",
		"SRS1==@mx.a.test",
		"SRS0====@mx.a.test",
		"SRS0+ABCDEF=AB=c.test=x=y=z@mx.a.test",
		"SRS1=X=y=@mx.a.test",
		`"a@b"@c.test`,
		"@",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if back, err := r.Reverse(s); err == nil {
			at := strings.LastIndexByte(back, '@')
			if at <= 0 || at == len(back)-1 {
				t.Fatalf("Reverse(%q) = %q: not an address", s, back)
			}
		}
		fwd, err := r.Forward(s)
		if err != nil || fwd == s {
			return
		}
		if len(fwd) > maxAddress || !strings.HasSuffix(fwd, "@mx.a.test") {
			t.Fatalf("Forward(%q) = %q", s, fwd)
		}
		back, err := r.Reverse(fwd)
		if err != nil {
			t.Fatalf("Reverse(Forward(%q) = %q): %v", s, fwd, err)
		}
		// SRS1 gives back the first hop's SRS0 (its separator normalized).
		if tag, _ := srsTag(s[:strings.LastIndexByte(s, '@')]); IsSRS(s) && tag == 1 {
			return
		}
		if IsSRS(s) {
			if !strings.EqualFold(back[5:], s[5:]) {
				t.Fatalf("Reverse(Forward(%q)) = %q", s, back)
			}
			return
		}
		if back != s {
			t.Fatalf("Reverse(Forward(%q)) = %q", s, back)
		}
	})
}
