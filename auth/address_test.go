package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeAddress(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		name, in, want string
	}{
		{"simple", "bob@example.com", "bob@example.com"},
		{"upper case", "Bob.Smith@Example.COM", "bob.smith@example.com"},
		{"atext specials", "a!#$%&'*+-/=?^_`{|}~z@example.com", "a!#$%&'*+-/=?^_`{|}~z@example.com"},
		{"subaddress", "bob+Tag@example.com", "bob+tag@example.com"},
		{"single label domain", "root@localhost", "root@localhost"},
		{"punycode domain", "a@xn--bcher-kva.example", "a@xn--bcher-kva.example"},
		{"digits and hyphen", "1@a-1.b2.example", "1@a-1.b2.example"},
		{"64 octet local part", strings.Repeat("x", 64) + "@e.com", strings.Repeat("x", 64) + "@e.com"},
		{"63 octet label", "a@" + long63 + ".com", "a@" + long63 + ".com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeAddress(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	bad := []struct{ name, in string }{
		{"empty", ""},
		{"no at", "bob"},
		{"empty local", "@example.com"},
		{"empty domain", "bob@"},
		{"two ats", "a@b@example.com"},
		{"space", "bob smith@example.com"},
		{"leading space", " bob@example.com"},
		{"tab", "bob\t@example.com"},
		{"control char", "bob\x01@example.com"},
		{"nul", "bob\x00@example.com"},
		{"newline", "bob@example.com\n"},
		{"crlf injection", "bob@example.com\r\nRCPT TO:<x@y>"},
		{"quoted string", `"bob"@example.com`},
		{"quote inside", `bo"b@example.com`},
		{"leading dot", ".bob@example.com"},
		{"trailing dot", "bob.@example.com"},
		{"double dot", "bo..b@example.com"},
		{"angle brackets", "<bob@example.com>"},
		{"comma", "a,b@example.com"},
		{"parenthesis", "a(b)@example.com"},
		{"backslash", `a\b@example.com`},
		{"utf8 local", "jörg@example.com"},
		{"utf8 domain", "a@bücher.example"},
		{"address literal", "a@[192.0.2.1]"},
		{"trailing dot domain", "a@example.com."},
		{"empty label", "a@example..com"},
		{"leading hyphen label", "a@-example.com"},
		{"trailing hyphen label", "a@example-.com"},
		{"underscore domain", "a@ex_ample.com"},
		{"65 octet local part", strings.Repeat("x", 65) + "@e.com"},
		{"64 octet label", "a@" + long63 + "a.com"},
		{"over-long address", strings.Repeat("x", 64) + "@" + strings.Repeat(long63+".", 3) + "com"},
		{"catch-all form", "@example.com"},
	}
	for _, tc := range bad {
		t.Run("bad/"+tc.name, func(t *testing.T) {
			got, err := NormalizeAddress(tc.in)
			if !errors.Is(err, ErrInvalidAddress) {
				t.Fatalf("NormalizeAddress(%q) = %q, %v; want ErrInvalidAddress", tc.in, got, err)
			}
		})
	}
}

func TestNormalizeDomain(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            error
	}{
		{"lower", "example.com", "example.com", nil},
		{"upper", "EXAMPLE.Com", "example.com", nil},
		{"empty", "", "", ErrInvalidDomain},
		{"space", "exa mple.com", "", ErrInvalidDomain},
		{"at sign", "a@b", "", ErrInvalidDomain},
		{"trailing dot", "example.com.", "", ErrInvalidDomain},
		{"leading dot", ".example.com", "", ErrInvalidDomain},
		{"over-long", strings.Repeat("a.", 127) + "a", "", ErrInvalidDomain},
		{"max length", strings.Repeat("a.", 126) + "a", strings.Repeat("a.", 126) + "a", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeDomain(tc.in)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("NormalizeDomain(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestNormalizeAliasAddress(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"catch-all", "@Example.com", "@example.com", true},
		{"address", "Sales@Example.com", "sales@example.com", true},
		{"catch-all bad domain", "@exa mple.com", "", false},
		{"bare at", "@", "", false},
		{"slash refused for local accounts", "a/b@example.com", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := normalizeAliasAddress(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("normalizeAliasAddress(%q) = %q, %v", tc.in, got, err)
			}
			if err != nil && !errors.Is(err, ErrInvalidAddress) {
				t.Fatalf("error %v is not ErrInvalidAddress", err)
			}
		})
	}
}

func TestSubaddressBase(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"tag", "bob+lists@example.com", "bob@example.com"},
		{"empty tag", "bob+@example.com", "bob@example.com"},
		{"two pluses", "bob+a+b@example.com", "bob@example.com"},
		{"no tag", "bob@example.com", ""},
		{"leading plus", "+tag@example.com", ""},
		{"base ends with dot", "bob.+x@example.com", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := subaddressBase(tc.in); got != tc.want {
				t.Fatalf("subaddressBase(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
