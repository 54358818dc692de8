package mailauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"blitiri.com.ar/go/spf"
)

func TestSPF(t *testing.T) {
	ns, c := newChecker(t, 0)
	ns.AddTXT("pass.test.", "v=spf1 ip4:192.0.2.0/24 -all")
	ns.AddTXT("fail.test.", "v=spf1 ip4:198.51.100.1 -all")
	ns.AddTXT("softfail.test.", "v=spf1 ip4:198.51.100.1 ~all")
	ns.AddTXT("neutral.test.", "v=spf1 ?all")
	ns.AddTXT("norecord.test.", "some-verification=abc")
	ns.AddTXT("broken.test.", "v=spf1 bogus:mechanism -all")
	ns.AddTXT("two.test.", "v=spf1 -all")
	ns.AddTXT("two.test.", "v=spf1 +all")
	ns.SetRcode("servfail.test.", servfail)
	ns.AddTXT("mx.test.", "v=spf1 mx -all")
	ns.Add("mx.test. MX 10 mail.mx.test.", "mail.mx.test. A 192.0.2.10")
	ns.AddTXT("include.test.", "v=spf1 include:pass.test -all")
	ns.AddTXT("helo.example.test.", "v=spf1 a -all")
	ns.Add("helo.example.test. A 192.0.2.10")
	ns.AddTXT("includetemp.test.", "v=spf1 include:servfail.test -all")
	ns.AddTXT("nullmx.test.", "v=spf1 mx -all")
	ns.Add("nullmx.test. MX 0 .")
	ns.AddTXT("badname.test.", "v=spf1 a:bad..name -all")

	// Eleven a: terms, each with an address that does not match: the
	// eleventh query is one too many (RFC 7208 §4.6.4).
	var terms []string
	for i := range 11 {
		name := fmt.Sprintf("h%d.limit.test", i)
		ns.Add(name + ". A 198.51.100.7")
		terms = append(terms, "a:"+name)
	}
	ns.AddTXT("limit.test.", "v=spf1 "+strings.Join(terms[:10], " ")+" ip4:192.0.2.10 -all")
	ns.AddTXT("overlimit.test.", "v=spf1 "+strings.Join(terms, " ")+" ip4:192.0.2.10 -all")
	// Three a: terms for names that do not exist: the third void lookup
	// is one too many.
	ns.AddTXT("void.test.", "v=spf1 a:gone1.void.test a:gone2.void.test ip4:192.0.2.10 -all")
	ns.AddTXT("overvoid.test.", "v=spf1 a:gone1.void.test a:gone2.void.test a:gone3.void.test ip4:192.0.2.10 -all")
	// An include loop ends at the lookup limit.
	ns.AddTXT("loop.test.", "v=spf1 include:loop.test -all")

	tests := []struct {
		name, helo, from string
		want             Result
		wantIdentity     string
		wantErr          error
	}{
		{name: "pass", from: "a@pass.test", want: Pass},
		{name: "fail", from: "a@fail.test", want: Fail},
		{name: "softfail", from: "a@softfail.test", want: SoftFail},
		{name: "neutral", from: "a@neutral.test", want: Neutral},
		{name: "none without record", from: "a@norecord.test", want: None},
		{name: "none for NXDOMAIN", from: "a@nowhere.test", want: None},
		{name: "none for a one-label domain", from: "a@localhost", want: None},
		{name: "none for an address literal", from: "a@[192.0.2.1]", want: None},
		{name: "temperror", from: "a@servfail.test", want: TempError},
		{name: "temperror through include", from: "a@includetemp.test", want: TempError},
		{name: "permerror syntax", from: "a@broken.test", want: PermError},
		{name: "permerror two records", from: "a@two.test", want: PermError},
		{name: "mx", from: "a@mx.test", want: Pass},
		{name: "null MX matches nothing", from: "a@nullmx.test", want: Fail},
		{name: "malformed name does not match", from: "a@badname.test", want: Fail},
		{name: "include", from: "a@include.test", want: Pass},
		{name: "upper case and trailing dot", from: "A@PASS.TEST.", want: Pass},
		{name: "ten lookups allowed", from: "a@limit.test", want: Pass},
		{name: "eleven lookups permerror", from: "a@overlimit.test", want: PermError, wantErr: spf.ErrLookupLimitReached},
		{name: "two void lookups allowed", from: "a@void.test", want: Pass},
		{name: "three void lookups permerror", from: "a@overvoid.test", want: PermError, wantErr: spf.ErrVoidLookupLimitReached},
		{name: "include loop permerror", from: "a@loop.test", want: PermError, wantErr: spf.ErrLookupLimitReached},
		{name: "null sender checks HELO", helo: "helo.example.test", from: "", want: Pass, wantIdentity: IdentityHelo},
		{name: "null sender with address literal HELO", helo: "[192.0.2.10]", from: "", want: None, wantIdentity: IdentityHelo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			helo := tc.helo
			if helo == "" {
				helo = "client.test"
			}
			got := checkSPF(context.Background(), c.Resolver, client, helo, tc.from)
			if got.Result != tc.want {
				t.Errorf("result %s (err %v), want %s", got.Result, got.Err, tc.want)
			}
			want := tc.wantIdentity
			if want == "" {
				want = IdentityMailFrom
			}
			if got.Identity != want {
				t.Errorf("identity %s, want %s", got.Identity, want)
			}
			if tc.wantErr != nil && !errors.Is(got.Err, tc.wantErr) {
				t.Errorf("err %v, want %v", got.Err, tc.wantErr)
			}
		})
	}
	// The limits hold in queries too: the eleventh a: name is never asked.
	if n := ns.Queries("h10.limit.test", "A"); n != 0 {
		t.Errorf("%d A queries for the eleventh name", n)
	}
	if n := ns.Queries("gone3.void.test", "A") + ns.Queries("gone3.void.test", "AAAA"); n == 0 {
		t.Errorf("the third void name was not asked (the test would prove nothing)")
	}
}
