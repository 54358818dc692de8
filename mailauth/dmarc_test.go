package mailauth

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestDMARC(t *testing.T) {
	ns, _ := newChecker(t, 0)
	s := newSigner(t, ns)
	// SPF: bounces.example.test (and the strict variant's own domain)
	// allow the client; other.test does not.
	ns.AddTXT("bounces.example.test.", "v=spf1 ip4:192.0.2.10 -all")
	ns.AddTXT("strict.test.", "v=spf1 ip4:192.0.2.10 -all")
	ns.AddTXT("bounces.strict.test.", "v=spf1 ip4:192.0.2.10 -all")
	ns.AddTXT("other.test.", "v=spf1 -all")
	ns.AddTXT("_dmarc.example.test.", "v=DMARC1; p=reject")
	ns.AddTXT("_dmarc.strict.test.", "v=DMARC1; p=reject; aspf=s; adkim=s")
	ns.AddTXT("_dmarc.subpol.test.", "v=DMARC1; p=none; sp=reject")
	ns.AddTXT("_dmarc.own.subpol.test.", "v=DMARC1; p=quarantine")
	ns.AddTXT("_dmarc.pct0.test.", "v=DMARC1; p=reject; pct=0")
	ns.AddTXT("_dmarc.pct100.test.", "v=DMARC1; p=reject; pct=100")
	ns.AddTXT("_dmarc.pct50.test.", "v=DMARC1; p=quarantine; pct=50")
	ns.AddTXT("_dmarc.broken.test.", "v=DMARC1; p=bogus")
	ns.AddTXT("_dmarc.two.test.", "v=DMARC1; p=reject")
	ns.AddTXT("_dmarc.two.test.", "v=DMARC1; p=none")
	ns.AddTXT("_dmarc.noise.test.", "google-site-verification=x")
	ns.AddTXT("_dmarc.noise.test.", "v=DMARC1;p=quarantine")
	ns.SetRcode("_dmarc.trouble.test.", servfail)
	ns.AddTXT("_dmarc.spftemp.test.", "v=DMARC1; p=reject")
	ns.SetRcode("spftemp.test.", servfail)

	signedBy := func(from, d string) string { return s.sign(message(from), d, true) }

	tests := []struct {
		name       string
		mailFrom   string
		msg        string // message; From taken from it
		from       []string
		sample     int
		want       Result
		policy     Policy
		disp       Policy
		aligned    bool
		wantFromEr error
	}{
		{name: "relaxed SPF alignment", mailFrom: "b@bounces.example.test", msg: message("a@example.test"), want: Pass, policy: PolicyReject, disp: PolicyNone, aligned: true},
		{name: "strict SPF alignment fails for a subdomain", mailFrom: "b@bounces.strict.test", msg: message("a@strict.test"), want: Fail, policy: PolicyReject, disp: PolicyReject},
		{name: "strict SPF alignment passes for the same domain", mailFrom: "b@strict.test", msg: message("a@strict.test"), want: Pass, policy: PolicyReject, disp: PolicyNone, aligned: true},
		{name: "unaligned SPF pass fails", mailFrom: "b@bounces.example.test", msg: message("a@subpol.test"), want: Fail, policy: PolicyNone, disp: PolicyNone},
		{name: "aligned DKIM passes despite SPF fail", mailFrom: "b@other.test", msg: signedBy("a@example.test", "example.test"), want: Pass, policy: PolicyReject, disp: PolicyNone, aligned: true},
		{name: "relaxed DKIM alignment", mailFrom: "b@other.test", msg: signedBy("a@example.test", "mail.example.test"), want: Pass, policy: PolicyReject, disp: PolicyNone, aligned: true},
		{name: "strict DKIM alignment fails for a subdomain", mailFrom: "b@other.test", msg: signedBy("a@strict.test", "mail.strict.test"), want: Fail, policy: PolicyReject, disp: PolicyReject},
		{name: "unaligned DKIM fails", mailFrom: "b@other.test", msg: signedBy("a@example.test", "other.test"), want: Fail, policy: PolicyReject, disp: PolicyReject},
		{name: "altered DKIM fails", mailFrom: "b@other.test", msg: strings.Replace(signedBy("a@example.test", "example.test"), "Hello.", "Pay now.", 1), want: Fail, policy: PolicyReject, disp: PolicyReject},
		{name: "org domain record for a subdomain uses sp", mailFrom: "b@other.test", msg: message("a@deep.sub.subpol.test"), want: Fail, policy: PolicyReject, disp: PolicyReject},
		{name: "org domain itself uses p", mailFrom: "b@other.test", msg: message("a@subpol.test"), want: Fail, policy: PolicyNone, disp: PolicyNone},
		{name: "subdomain with its own record uses its p", mailFrom: "b@other.test", msg: message("a@own.subpol.test"), want: Fail, policy: PolicyQuarantine, disp: PolicyQuarantine},
		{name: "org domain fallback", mailFrom: "b@other.test", msg: message("a@news.example.test"), want: Fail, policy: PolicyReject, disp: PolicyReject},
		{name: "pct=0 downgrades reject to quarantine", mailFrom: "b@other.test", msg: message("a@pct0.test"), sample: 0, want: Fail, policy: PolicyReject, disp: PolicyQuarantine},
		{name: "pct=100 applies reject", mailFrom: "b@other.test", msg: message("a@pct100.test"), sample: 99, want: Fail, policy: PolicyReject, disp: PolicyReject},
		{name: "pct=50 inside the sample", mailFrom: "b@other.test", msg: message("a@pct50.test"), sample: 49, want: Fail, policy: PolicyQuarantine, disp: PolicyQuarantine},
		{name: "pct=50 outside the sample", mailFrom: "b@other.test", msg: message("a@pct50.test"), sample: 50, want: Fail, policy: PolicyQuarantine, disp: PolicyNone},
		{name: "no record", mailFrom: "b@other.test", msg: message("a@norecord.test"), want: None, disp: PolicyNone},
		{name: "two records mean none", mailFrom: "b@other.test", msg: message("a@two.test"), want: None, disp: PolicyNone},
		{name: "other TXT records ignored", mailFrom: "b@other.test", msg: message("a@noise.test"), want: Fail, policy: PolicyQuarantine, disp: PolicyQuarantine},
		{name: "broken record", mailFrom: "b@other.test", msg: message("a@broken.test"), want: PermError, disp: PolicyNone},
		{name: "record lookup temperror", mailFrom: "b@other.test", msg: message("a@trouble.test"), want: TempError, disp: PolicyNone},
		{name: "record temperror with strictly aligned DKIM", mailFrom: "b@other.test", msg: signedBy("a@trouble.test", "trouble.test"), want: TempError, disp: PolicyNone, aligned: true},
		{name: "aligned SPF temperror", mailFrom: "b@spftemp.test", msg: message("a@spftemp.test"), want: TempError, policy: PolicyReject, disp: PolicyNone},
		{name: "no From", mailFrom: "b@other.test", msg: "Subject: x\r\n\r\nx\r\n", from: []string{}, want: PermError, disp: PolicyNone, wantFromEr: ErrNoFrom},
		{name: "two From fields", mailFrom: "b@other.test", msg: message("a@example.test"), from: []string{"a@example.test", "b@other.test"}, want: PermError, disp: PolicyNone, wantFromEr: ErrMultipleFrom},
		{name: "two From addresses", mailFrom: "b@other.test", msg: message("a@example.test"), from: []string{"a@other.test, b@example.test"}, want: PermError, disp: PolicyNone, wantFromEr: ErrMultipleFrom},
		{name: "unreadable From", mailFrom: "b@other.test", msg: message("a@example.test"), from: []string{"<<<"}, want: PermError, disp: PolicyNone, wantFromEr: ErrBadFrom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Checker{Resolver: newResolver(t, ns), Sample: func() int { return tc.sample }}
			from := tc.from
			if from == nil {
				from = []string{fromOf(tc.msg)}
			}
			res := c.Check(context.Background(), &Input{IP: client, Helo: "client.test", MailFrom: tc.mailFrom, From: from, Message: strings.NewReader(tc.msg)})
			d := res.DMARC
			if d.Result != tc.want || d.Policy != tc.policy || d.Disposition != tc.disp || d.Aligned != tc.aligned {
				t.Errorf("got %s policy %q disposition %q aligned %v (err %v; spf %s, dkim %+v), want %s %q %q %v",
					d.Result, d.Policy, d.Disposition, d.Aligned, d.Err, res.SPF.Result, res.DKIM, tc.want, tc.policy, tc.disp, tc.aligned)
			}
			if !errors.Is(d.FromErr, tc.wantFromEr) || (tc.wantFromEr == nil) != (d.FromErr == nil) {
				t.Errorf("FromErr %v, want %v", d.FromErr, tc.wantFromEr)
			}
		})
	}
}

// fromOf returns the value of msg's first From field.
func fromOf(msg string) string {
	for l := range strings.SplitSeq(msg, "\r\n") {
		if v, ok := strings.CutPrefix(l, "From: "); ok {
			return v
		}
	}
	return ""
}

func TestAlignment(t *testing.T) {
	tests := []struct {
		a, b            string
		relaxed, strict bool
	}{
		{"example.test", "example.test", true, true},
		{"mail.example.test", "example.test", true, false},
		{"a.example.co.uk", "b.example.co.uk", true, false},
		{"example.co.uk", "other.co.uk", false, false},
		{"example.com", "example.net", false, false},
		{"notexample.test", "example.test", false, false},
		{"", "example.test", false, false},
	}
	for _, tc := range tests {
		if got := Aligned(tc.a, tc.b, false); got != tc.relaxed {
			t.Errorf("relaxed %s ~ %s = %v", tc.a, tc.b, got)
		}
		if got := Aligned(tc.a, tc.b, true); got != tc.strict {
			t.Errorf("strict %s ~ %s = %v", tc.a, tc.b, got)
		}
	}
	if got := OrgDomain("co.uk"); got != "co.uk" {
		t.Errorf("OrgDomain(co.uk) = %q", got)
	}
}

func TestFromDomain(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   string
		err    error
	}{
		{"plain", []string{"a@Example.TEST"}, "example.test", nil},
		{"display name", []string{`"Smith, J." <j@example.test>`}, "example.test", nil},
		{"dotted display name", []string{`J. Smith <j@example.test>`}, "example.test", nil},
		{"encoded name in unknown charset", []string{`=?x-unknown?q?caf=E9?= <j@example.test>`}, "example.test", nil},
		{"folded", []string{"J Smith\r\n <j@example.test>"}, "example.test", nil},
		{"comment", []string{"j@example.test (Joe)"}, "example.test", nil},
		{"IDN", []string{"j@bücher.test"}, "xn--bcher-kva.test", nil},
		{"Latin-1 display name", []string{"J\xf6rg <j@example.test>"}, "example.test", nil},
		{"stray semicolon", []string{"John <john@example.test>;"}, "example.test", nil},
		{"two angle addresses", []string{"J\xf6rg <j@example.test>, <k@x.test>"}, "", ErrBadFrom},
		{"none", nil, "", ErrNoFrom},
		{"empty", []string{"  "}, "", ErrNoFrom},
		{"group without members", []string{"undisclosed:;"}, "", ErrNoFrom},
		{"two fields", []string{"a@x.test", "b@y.test"}, "", ErrMultipleFrom},
		{"two addresses", []string{"a@x.test, b@y.test"}, "", ErrMultipleFrom},
		{"no domain", []string{"<a>"}, "", ErrBadFrom},
		{"address literal", []string{"a@[192.0.2.1]"}, "", ErrBadFrom},
		{"garbage", []string{"<<<"}, "", ErrBadFrom},
		{"too long", []string{strings.Repeat("x", maxFromLen) + "@x.test"}, "", ErrBadFrom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromDomain(tc.values)
			if got != tc.want || !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Errorf("FromDomain(%q) = %q, %v; want %q, %v", tc.values, got, err, tc.want, tc.err)
			}
		})
	}
}
