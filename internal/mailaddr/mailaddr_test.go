package mailaddr

import (
	"strings"
	"testing"
)

func TestDomain(t *testing.T) {
	tests := []struct {
		name, addr, want string
		ok               bool
	}{
		{name: "lower-cased", addr: "Bob@Example.ORG", want: "example.org", ok: true},
		{name: "last at sign", addr: `"a@b"@c.test`, want: "c.test", ok: true},
		{name: "address literal", addr: "x@[192.0.2.1]", want: "[192.0.2.1]", ok: true},
		{name: "utf-8", addr: "bø@bø.test", want: "bø.test", ok: true},
		{name: "no at", addr: "nobody"},
		{name: "empty local part", addr: "@b.test"},
		{name: "empty domain", addr: "a@"},
		{name: "space", addr: "a b@c.test"},
		{name: "angle brackets", addr: "<a@c.test>"},
		{name: "line break", addr: "a@c.test\r\nRCPT TO:<x@y>"},
		{name: "too long", addr: strings.Repeat("a", 300) + "@" + strings.Repeat("b", 20) + ".test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Domain(tc.addr)
			if got != tc.want || ok != tc.ok {
				t.Errorf("Domain(%q) = %q, %v; want %q, %v", tc.addr, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestIsASCII(t *testing.T) {
	if !IsASCII("bob@b.test") || !IsASCII("") || IsASCII("bø@b.test") || IsASCII("x\x80") {
		t.Error("wrong answer")
	}
}

func FuzzDomain(f *testing.F) {
	for _, s := range []string{"bob@b.test", "@", "a@", "@b", "a@b@c", "A@B.C", "x@[IPv6:::1]", "a b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		d, ok := Domain(addr)
		if !ok {
			if d != "" {
				t.Fatalf("%q: not ok but domain %q", addr, d)
			}
			return
		}
		if d == "" || d != strings.ToLower(d) || strings.ContainsAny(d, "@ \t\r\n<>") {
			t.Fatalf("%q: domain %q", addr, d)
		}
		if !strings.HasSuffix(strings.ToLower(addr), "@"+d) {
			t.Fatalf("%q: domain %q is not its end", addr, d)
		}
	})
}
