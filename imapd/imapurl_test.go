package imapd

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
)

func TestParseIMAPURL(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want *imapURL // nil: refused
	}{
		{"path", "/INBOX/;UID=5", &imapURL{mailbox: "INBOX", uid: 5}},
		{"uidvalidity and section", "/a%2Fb;uidvalidity=7/;uid=5/;section=1.2.MIME",
			&imapURL{mailbox: "a/b", uidValidity: 7, uid: 5, section: imap.FetchItemBodySection{Part: []int{1, 2}, Specifier: imap.PartSpecifierMIME}}},
		{"hierarchy", "/Lists/go/;UID=1/;SECTION=TEXT",
			&imapURL{mailbox: "Lists/go", uid: 1, section: imap.FetchItemBodySection{Specifier: imap.PartSpecifierText}}},
		{"header fields", "/INBOX/;UID=1/;SECTION=HEADER.FIELDS.NOT%20(To%20Cc)",
			&imapURL{mailbox: "INBOX", uid: 1, section: imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"To", "Cc"}}}},
		{"partial", "/INBOX/;UID=1/;PARTIAL=10.20",
			&imapURL{mailbox: "INBOX", uid: 1, section: imap.FetchItemBodySection{Partial: &imap.SectionPartial{Offset: 10, Size: 20}}}},
		{"partial open", "/INBOX/;UID=1/;SECTION=1/;PARTIAL=4294967295",
			&imapURL{mailbox: "INBOX", uid: 1, section: imap.FetchItemBodySection{Part: []int{1}, Partial: &imap.SectionPartial{Offset: math.MaxUint32, Size: math.MaxInt64 - math.MaxUint32}}}},
		{"relative", ";UID=3/;SECTION=HEADER", &imapURL{uid: 3, section: imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader}}},
		{"absolute", "IMAP://a%40b.c;AUTH=*@Host.example:993/INBOX/;UID=2",
			&imapURL{absolute: true, user: "a@b.c", host: "Host.example", mailbox: "INBOX", uid: 2}},
		{"absolute ipv6", "imap://u@[::1]/INBOX/;UID=2", &imapURL{absolute: true, user: "u", host: "::1", mailbox: "INBOX", uid: 2}},
		{"utf-8 mailbox", "/%C3%A9t%C3%A9/;UID=1", &imapURL{mailbox: "été", uid: 1}},
		{"uid zero", "/INBOX/;UID=0", nil},
		{"uid over 32 bits", "/INBOX/;UID=4294967296", nil},
		{"no uid", "/INBOX", nil},
		{"message list", "/INBOX?SUBJECT%20x", nil},
		{"urlauth", "/INBOX/;UID=1;EXPIRE=2030-01-01T00:00:00Z;URLAUTH=anonymous:internal:0123456789abcdef0123456789abcdef", nil},
		{"trailing", "/INBOX/;UID=1/", nil},
		{"bad escape", "/IN%2/;UID=1", nil},
		{"escaped control", "/IN%0ABOX/;UID=1", nil},
		{"invalid utf-8", "/%FF/;UID=1", nil},
		{"empty mailbox", "/;UID=1", nil},
		{"network path", "//host/INBOX/;UID=1", nil},
		{"absolute without path", "imap://host", nil},
		{"absolute relative path", "imap://host;UID=1", nil},
		{"bad port", "imap://h:99999x/INBOX/;UID=1", nil},
		{"empty auth", "imap://u;AUTH=@h/INBOX/;UID=1", nil},
		{"mime of the message", "/INBOX/;UID=1/;SECTION=MIME", nil},
		{"bad section", "/INBOX/;UID=1/;SECTION=1..2", nil},
		{"section without list", "/INBOX/;UID=1/;SECTION=HEADER.FIELDS", nil},
		{"section bad list", "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(a:b)", nil},
		{"too deep", "/INBOX/;UID=1/;SECTION=" + strings.Repeat("1.", maxSectionDepth) + "1", nil},
		{"too many fields", "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(" + strings.Repeat("a%20", maxSectionFields) + "a)", nil},
		{"too long", "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(" + strings.Repeat("a", maxURLLength) + ")", nil},
		{"partial zero length", "/INBOX/;UID=1/;PARTIAL=1.0", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseIMAPURL(tc.in)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzParseIMAPURL: no input panics or takes long, and what parses
// keeps the parser's bounds.
func FuzzParseIMAPURL(f *testing.F) {
	for _, s := range []string{
		"/INBOX/;UID=5", "/a;UIDVALIDITY=7/;UID=5/;SECTION=1.2.MIME/;PARTIAL=0.10",
		"imap://u%40d;AUTH=*@h:143/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(A%20B)", ";UID=1/;SECTION=TEXT",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := parseIMAPURL(s)
		if err != nil {
			return
		}
		switch {
		case len(s) > maxURLLength:
			t.Fatalf("%q: over maxURLLength", s)
		case u.uid == 0:
			t.Fatalf("%q: UID 0", s)
		case !utf8.ValidString(u.mailbox):
			t.Fatalf("%q: mailbox not UTF-8", s)
		case u.absolute && u.host == "":
			t.Fatalf("%q: absolute without host", s)
		case len(u.section.Part) > maxSectionDepth,
			len(u.section.HeaderFields) > maxSectionFields, len(u.section.HeaderFieldsNot) > maxSectionFields:
			t.Fatalf("%q: section over its bounds", s)
		case u.section.Partial != nil && (u.section.Partial.Offset < 0 || u.section.Partial.Size <= 0):
			t.Fatalf("%q: partial %+v", s, *u.section.Partial)
		}
		for _, c := range u.mailbox + u.user {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("%q: control character decoded", s)
			}
		}
	})
}
