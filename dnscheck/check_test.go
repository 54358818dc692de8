package dnscheck

import (
	"context"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dns/dnstest"
)

const testKey = `sel._domainkey.example.test. 3600 IN TXT "v=DKIM1; k=ed25519; p=AAAABBBB"`

func TestRun(t *testing.T) {
	srv := dnstest.NewServer(t)
	// example.test is published right; bad.test wrong or not at all.
	srv.Add(
		"example.test. MX 10 mail.example.test.",
		"mail.example.test. A 127.0.0.10",
		"10.0.0.127.in-addr.arpa. PTR mail.example.test.",
		"_dmarc.example.test. TXT \"v=DMARC1; p=quarantine\"",
		"sel._domainkey.example.test. TXT \"v=DKIM1; k=ed25519; p=AAAA BBBB\"",
		"autoconfig.example.test. CNAME mail.example.test.",
		"autodiscover.example.test. A 127.0.0.10",
		"_submissions._tcp.example.test. SRV 0 1 465 mail.example.test.",
		"_submission._tcp.example.test. SRV 10 1 587 mail.example.test.",
		"_imaps._tcp.example.test. SRV 0 1 993 mail.example.test.",
		"_imap._tcp.example.test. SRV 10 1 143 mail.example.test.",
		"_pop3s._tcp.example.test. SRV 0 0 0 .",
		"_pop3._tcp.example.test. SRV 0 0 0 .",
		"_sieve._tcp.example.test. SRV 0 1 4190 mail.example.test.",
		"_mta-sts.example.test. TXT \"v=STSv1; id=20261204\"",

		"bad.test. MX 10 other.example.net.",
		"bad.test. TXT \"v=spf1 ip4:192.0.2.1 -all\"",
		"_dmarc.bad.test. TXT \"v=DMARC1; p=none\"",
		"_dmarc.bad.test. TXT \"v=DMARC1; p=reject\"",
		"sel._domainkey.bad.test. TXT \"v=DKIM1; p=OTHER\"",
		"autoconfig.bad.test. CNAME www.bad.test.",
		"_imaps._tcp.bad.test. SRV 0 1 9993 mail.example.test.",
		"_pop3._tcp.bad.test. SRV 0 1 110 mail.example.test.",
		"_smtp._tls.bad.test. TXT \"v=TLSRPTv1\"",
	)
	srv.AddTXT("example.test.", "v=spf1 mx -all")
	r, err := dns.New(dns.Options{Server: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	ports := dns.Ports{Submissions: 465, Submission: 587, IMAPS: 993, IMAP: 143, ManageSieve: 4190}
	for _, tc := range []struct {
		name   string
		domain string
		key    string
		want   map[string]Status // "Kind Name" → status
	}{
		{"published", "example.test", testKey, map[string]Status{
			"MX example.test":                      OK,
			"A/AAAA mail.example.test":             OK,
			"PTR 127.0.0.10":                       OK,
			"SPF example.test":                     OK,
			"DKIM sel._domainkey.example.test":     OK,
			"DMARC _dmarc.example.test":            OK,
			"autoconfig autoconfig.example.test":   OK,
			"autoconfig autodiscover.example.test": OK,
			"SRV _submissions._tcp.example.test":   OK,
			"SRV _pop3._tcp.example.test":          OK,
			"SRV _sieve._tcp.example.test":         OK,
			"MTA-STS _mta-sts.example.test":        OK,
			"TLS-RPT _smtp._tls.example.test":      Optional,
		}},
		{"wrong or missing", "bad.test", strings.ReplaceAll(testKey, "example.test", "bad.test"), map[string]Status{
			"MX bad.test":                      Wrong,
			"SPF bad.test":                     Wrong,
			"DKIM sel._domainkey.bad.test":     Wrong,
			"DMARC _dmarc.bad.test":            Wrong,
			"autoconfig autoconfig.bad.test":   Wrong,
			"autoconfig autodiscover.bad.test": Missing,
			"SRV _submissions._tcp.bad.test":   Missing,
			"SRV _imaps._tcp.bad.test":         Wrong,
			"SRV _pop3._tcp.bad.test":          Wrong,
			"MTA-STS _mta-sts.bad.test":        Optional,
			"TLS-RPT _smtp._tls.bad.test":      Wrong,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := []dns.DKIMKey{{Algorithm: "ed25519", Selector: "sel", Zone: tc.key}}
			got := map[string]Result{}
			for _, res := range Run(context.Background(), r, Params{Domain: tc.domain, Hostname: "mail.example.test", Keys: keys, Ports: ports}) {
				got[res.Kind+" "+res.Name] = res
			}
			for k, want := range tc.want {
				res, ok := got[k]
				if !ok {
					t.Errorf("%s: no result (have %v)", k, keysOf(got))
					continue
				}
				if res.Status != want {
					t.Errorf("%s: status %q (%s, found %q), want %q", k, res.Status, res.Note, res.Found, want)
				}
				if (want == Missing || want == Wrong) && res.Want == "" {
					t.Errorf("%s: %s without a record to publish", k, want)
				}
			}
		})
	}
	// The record to publish is dns.Records' line, exactly.
	for _, res := range Run(context.Background(), r, Params{Domain: "bad.test", Hostname: "mail.example.test", Ports: ports}) {
		if res.Kind == "MX" && res.Want != "bad.test. 3600 IN MX 10 mail.example.test." {
			t.Errorf("MX want %q", res.Want)
		}
		if res.Kind == "DKIM" && res.Status != Missing {
			t.Errorf("no key: DKIM %q", res.Status)
		}
	}
	// A host without addresses: A/AAAA and PTR are missing.
	for _, res := range Run(context.Background(), r, Params{Domain: "example.test", Hostname: "nowhere.example.test", Ports: ports}) {
		if (res.Kind == "A/AAAA" || res.Kind == "PTR") && res.Status != Missing {
			t.Errorf("%s of a host without addresses: %q", res.Kind, res.Status)
		}
	}
}

func keysOf(m map[string]Result) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
