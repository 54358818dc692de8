package mimeparse

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func fmtAddrs(l []imap.Address) string {
	var b strings.Builder
	for _, a := range l {
		fmt.Fprintf(&b, "(%q %q %q %q)", a.Name, a.Route, a.Mailbox, a.Host)
	}
	return b.String()
}

func TestParseAddressList(t *testing.T) {
	a := func(name, mailbox, host string) imap.Address {
		return imap.Address{Name: name, Mailbox: mailbox, Host: host}
	}
	routed := func(route, mailbox, host string) imap.Address {
		return imap.Address{Route: route, Mailbox: mailbox, Host: host}
	}
	start := func(name string) imap.Address { return imap.Address{Mailbox: name} }
	end := imap.Address{}
	tests := []struct {
		in   string
		want []imap.Address
	}{
		{"", nil},
		{"user@domain", []imap.Address{a("", "user", "domain")}},
		{"From Real <fromuser@fromdomain.org>", []imap.Address{a("From Real", "fromuser", "fromdomain.org")}},
		{"user@domain (Real Name)", []imap.Address{a("Real Name", "user", "domain")}},
		{"<@route:user@domain>", []imap.Address{routed("@route", "user", "domain")}},
		{"<@a.example, @b.example:user@domain>", []imap.Address{routed("@a.example,@b.example", "user", "domain")}},
		{"<@a.example no colon user@domain>", []imap.Address{a("", MissingMailbox, MissingDomain)}},
		{"<user-from (comment)@ (comment) domain.org>", []imap.Address{a("", "user-from", "domain.org")}},
		{`"Last, First" <lf@example.org>, b@example.org`, []imap.Address{a("Last, First", "lf", "example.org"), a("", "b", "example.org")}},
		{`"quoted \"inner\"" <q@x>`, []imap.Address{a(`quoted "inner"`, "q", "x")}},
		{"=?ISO-8859-1?Q?Andr=E9?= <andre@example.org>", []imap.Address{a("=?ISO-8859-1?Q?Andr=E9?=", "andre", "example.org")}},
		{"John Q. Public <john.q.public@example.com>", []imap.Address{a("John Q. Public", "john.q.public", "example.com")}},
		{"group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;", []imap.Address{
			start("group"), a("", "g1", "d1.org"), a("", "g2", "d2.org"), end,
			start("group2"), a("", "g3", "d3.org"), end}},
		{"group:;, group2: (foo) ;", []imap.Address{start("group"), end, start("group2"), end}},
		{"undisclosed-recipients:;", []imap.Address{start("undisclosed-recipients"), end}},
		{"unterminated: a@b", []imap.Address{start("unterminated"), a("", "a", "b"), end}},
		{"user", []imap.Address{a("", "user", MissingDomain)}},
		{"<@>", []imap.Address{a("", MissingMailbox, MissingDomain)}},
		{"Name <user@>", []imap.Address{a("Name", "user", MissingDomain)}},
		{"a@b,,, ,c@d", []imap.Address{a("", "a", "b"), a("", "c", "d")}},
		{"a@[127.0.0.1]", []imap.Address{a("", "a", "[127.0.0.1]")}},
		{"a@b junk junk, c@d", []imap.Address{a("", "a", "b"), a("", "c", "d")}},
		{"(only a comment)", nil},
		// The quote runs to the end: one word, no domain.
		{"\"unterminated <x@y>", []imap.Address{a("", "unterminated <x@y>", MissingDomain)}},
		{"Folded\r\n Name <f@x>", []imap.Address{a("Folded Name", "f", "x")}},
	}
	for _, tc := range tests {
		if got := ParseAddressList(tc.in); fmtAddrs(got) != fmtAddrs(tc.want) {
			t.Errorf("ParseAddressList(%q)\n got %s\nwant %s", tc.in, fmtAddrs(got), fmtAddrs(tc.want))
		}
	}
}

// TestParseAddressListBounded: a field of a million addresses yields
// MaxAddresses of them.
func TestParseAddressListBounded(t *testing.T) {
	v := strings.Repeat("a@b,", 100000)
	if n := len(ParseAddressList(v)); n != MaxAddresses {
		t.Errorf("%d addresses, want %d", n, MaxAddresses)
	}
	if n := len(ParseAddressList(strings.Repeat("g:", 5000) + strings.Repeat(";", 5000))); n > MaxAddresses {
		t.Errorf("%d addresses from nested group openers", n)
	}
}

// FuzzParseAddressList: any value parses without panicking, within the
// bound, and every address has a mailbox and a host or is a group marker.
func FuzzParseAddressList(f *testing.F) {
	for _, s := range []string{"a@b", "N <a@b>", "g: a@b, c@d;", `"q\" <x@y>`, "(c (nested) \\) x@y", "<@r:a@b>", "a@[1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l := ParseAddressList(s)
		if len(l) > MaxAddresses {
			t.Fatalf("%d addresses", len(l))
		}
		depth := 0
		for _, a := range l {
			switch {
			case a.Host != "":
				if a.Mailbox == "" {
					t.Fatalf("address without mailbox: %+v", a)
				}
			case a.Mailbox != "":
				depth++
			default:
				depth--
			}
			if depth < 0 || depth > 1 {
				t.Fatalf("unbalanced group markers in %s", fmtAddrs(l))
			}
		}
	})
}
