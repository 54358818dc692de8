package mailauth

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/posthouse/posthouse/dkim"
)

func TestAuthenticationResults(t *testing.T) {
	tests := []struct {
		name string
		res  Results
		want string
	}{
		{
			name: "all pass",
			res: Results{
				IPRev: IPRev{Result: Pass, IP: client, Name: "mx.client.test"},
				SPF:   SPF{Result: Pass, Identity: IdentityMailFrom, Sender: "bounce@mail.example.test", Domain: "mail.example.test"},
				DKIM:  []dkim.Verification{{Result: dkim.Pass, Domain: "example.test", Identifier: "@example.test"}},
				DMARC: DMARC{Result: Pass, Domain: "example.test", Policy: PolicyReject},
			},
			want: "mx.posthouse.test;\r\n\tiprev=pass policy.iprev=192.0.2.10;\r\n\tspf=pass smtp.mailfrom=bounce@mail.example.test;\r\n\tdkim=pass header.d=example.test header.i=@example.test;\r\n\tdmarc=pass header.from=example.test policy.dmarc=reject",
		},
		{
			name: "null sender, unsigned, no record",
			res: Results{
				IPRev: IPRev{Result: PermError, IP: netip.MustParseAddr("2001:db8::1")},
				SPF:   SPF{Result: None, Identity: IdentityHelo, Sender: "[192.0.2.1]"},
				DMARC: DMARC{Result: None, Domain: "example.test"},
			},
			want: "mx.posthouse.test;\r\n\tiprev=permerror policy.iprev=\"2001:db8::1\";\r\n\tspf=none smtp.helo=[192.0.2.1];\r\n\tdkim=none;\r\n\tdmarc=none header.from=example.test",
		},
		{
			name: "two From addresses",
			res: Results{
				IPRev:   IPRev{Result: Pass, IP: client},
				SPF:     SPF{Result: Fail, Identity: IdentityMailFrom, Sender: "a@x.test"},
				DKIMErr: dkim.ErrHeader,
				DMARC:   DMARC{Result: PermError, FromErr: ErrMultipleFrom},
			},
			want: "mx.posthouse.test;\r\n\tiprev=pass policy.iprev=192.0.2.10;\r\n\tspf=fail smtp.mailfrom=a@x.test;\r\n\tdkim=permerror reason=\"unreadable header\";\r\n\tdmarc=permerror reason=\"more than one From: address\"",
		},
		{
			name: "hostile values are quoted",
			res: Results{
				SPF: SPF{Result: Pass, Sender: `"a;b"@x.test`},
				DKIM: []dkim.Verification{
					{Result: dkim.Fail, Domain: "evil.test; dkim=pass header.d=bank.test", Identifier: "x\\"},
					{Result: dkim.Fail, Domain: "a\r\nX-Injected: yes", Identifier: "(comment) \"q\""},
				},
				DMARC: DMARC{Result: Fail, Domain: "x.test", Policy: PolicyReject},
			},
			want: "mx.posthouse.test;\r\n\tspf=pass smtp.mailfrom=\"\\\"a;b\\\"@x.test\";\r\n" +
				"\tdkim=fail header.d=\"evil.test; dkim=pass header.d=bank.test\" header.i=\"x?\";\r\n" +
				"\tdkim=fail header.d=\"a??X-Injected: yes\" header.i=\"(comment) \\\"q\\\"\";\r\n" +
				"\tdmarc=fail header.from=x.test policy.dmarc=reject",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.res.AuthenticationResults("mx.posthouse.test")
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			checkField(t, got)
		})
	}
}

// checkField checks an Authentication-Results value the way a reader
// would: only folds as line breaks, lines within 998 octets, and every
// result a method=value with key=value properties, each value a token or a
// well-formed quoted string. It returns the property values, unquoted.
func checkField(t testing.TB, v string) []string {
	t.Helper()
	for i, line := range strings.Split(v, "\r\n") {
		if i > 0 && !strings.HasPrefix(line, "\t") {
			t.Fatalf("line %d is not a fold: %q", i, line)
		}
		if strings.ContainsAny(line, "\r\n\x00") || len(line) > 998 {
			t.Fatalf("bad line %q", line)
		}
	}
	if !utf8.ValidString(v) {
		t.Fatalf("not UTF-8: %q", v)
	}
	var values []string
	s := strings.ReplaceAll(v, "\r\n\t", " ")
	_, s, _ = strings.Cut(s, ";")
	for s != "" {
		s = strings.TrimLeft(s, " ")
		// method=value or key=value
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], " ;\"") {
			t.Fatalf("no key=value at %q", s)
		}
		s = s[eq+1:]
		val, rest, err := readValue(s)
		if err != nil {
			t.Fatalf("%v at %q in %q", err, s, v)
		}
		values = append(values, val)
		s = rest
		if strings.HasPrefix(s, ";") {
			s = s[1:]
		} else if s != "" && s[0] != ' ' {
			t.Fatalf("junk after a value: %q", s)
		}
	}
	return values
}

// readValue reads a token or a quoted string (RFC 5322 §3.2.4).
func readValue(s string) (val, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		end := strings.IndexAny(s, " ;")
		if end < 0 {
			end = len(s)
		}
		val = s[:end]
		if val == "" || strings.ContainsAny(val, "\"\\()") {
			return "", "", errors.New("bad token")
		}
		return val, s[end:], nil
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 >= len(s) {
				return "", "", errors.New("backslash at the end")
			}
			i++
			b.WriteByte(s[i])
		case '"':
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", errors.New("unterminated quoted string")
}

func FuzzAuthenticationResults(f *testing.F) {
	f.Add("a@x.test", "x.test", "@x.test", "helo.test")
	f.Add(`"a;b"@x.test`, "evil; dkim=pass", "x\\", "[1.2.3.4]")
	f.Add("\xff\xfe", "a\r\nb", "(c)", "\"")
	f.Fuzz(func(t *testing.T, sender, d, i, helo string) {
		res := Results{
			IPRev: IPRev{Result: Pass, IP: client},
			SPF:   SPF{Result: Pass, Identity: IdentityMailFrom, Sender: sender},
			DKIM:  []dkim.Verification{{Result: dkim.Pass, Domain: d, Identifier: i}},
			DMARC: DMARC{Result: Fail, Domain: d, Policy: PolicyQuarantine},
		}
		values := checkField(t, res.AuthenticationResults("mx.posthouse.test"))
		// The values read back are the cleaned inputs, in order.
		want := []string{"pass", "192.0.2.10", "pass"}
		if p := pvalue(sender); p != "" {
			want = append(want, p)
		}
		want = append(want, "pass")
		if p := pvalue(d); p != "" {
			want = append(want, p)
		}
		if p := pvalue(i); p != "" {
			want = append(want, p)
		}
		want = append(want, "fail")
		if p := pvalue(d); p != "" {
			want = append(want, p)
		}
		want = append(want, "quarantine")
		if strings.Join(values, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("read back %q, want %q", values, want)
		}
		res.SPF.Identity, res.SPF.Sender = IdentityHelo, helo
		checkField(t, res.AuthenticationResults("mx.posthouse.test"))
	})
}

func FuzzFromDomain(f *testing.F) {
	for _, s := range []string{"a@example.test", `"x, y" <a@b.test>`, "a@x.test, b@y.test", "<<<", "g:a@b.test;", "=?utf-8?q?x?= <a@b.test>", "a@bücher.test"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, err := FromDomain([]string{v})
		if err != nil {
			if d != "" {
				t.Fatalf("domain %q with error %v", d, err)
			}
			return
		}
		if n, ok := NormalizeDomain(d); !ok || n != d {
			t.Fatalf("FromDomain(%q) = %q, not a normalized domain", v, d)
		}
	})
}
