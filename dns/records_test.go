package dns_test

import (
	"strings"
	"testing"

	"github.com/posthouse/posthouse/dns"
)

func TestRecords(t *testing.T) {
	ports := dns.Ports{Submissions: 465, Submission: 587, IMAPS: 993, ManageSieve: 4190}
	zones := func(recs []dns.Record) string {
		var b strings.Builder
		for _, r := range recs {
			b.WriteString(r.Zone + "\n")
		}
		return b.String()
	}
	key := dns.DKIMKey{Algorithm: "ed25519", Selector: "ed202611", Zone: `ed202611._domainkey.a.test. 3600 IN TXT "v=DKIM1; k=ed25519; p=x"`}
	got := zones(dns.Records("A.Test.", "Mail.A.Test", []dns.DKIMKey{key}, ports))
	for _, want := range []string{
		"a.test. 3600 IN MX 10 mail.a.test.\n",
		`a.test. 3600 IN TXT "v=spf1 mx -all"` + "\n",
		key.Zone + "\n",
		`_dmarc.a.test. 3600 IN TXT "v=DMARC1; p=quarantine; adkim=r; aspf=r"` + "\n",
		"_submissions._tcp.a.test. 3600 IN SRV 0 1 465 mail.a.test.\n",
		"_submission._tcp.a.test. 3600 IN SRV 10 1 587 mail.a.test.\n",
		"_imaps._tcp.a.test. 3600 IN SRV 0 1 993 mail.a.test.\n",
		"_imap._tcp.a.test. 3600 IN SRV 0 0 0 .\n", // RFC 6186 §4: not offered
		"_sieve._tcp.a.test. 3600 IN SRV 0 1 4190 mail.a.test.\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("records lack %q:\n%s", want, got)
		}
	}
	var comment string
	for _, r := range dns.Records("a.test", "mail.a.test", nil, ports) {
		if strings.HasPrefix(r.Comment, "DKIM") {
			comment = r.Comment
		}
	}
	if got := zones(dns.Records("a.test", "mail.a.test", nil, dns.Ports{})); !strings.Contains(got, "_sieve._tcp.a.test. 3600 IN SRV 0 0 0 .\n") {
		t.Errorf("ManageSieve off is not published as not offered:\n%s", got)
	}
	if !strings.Contains(comment, "posthouse admin dkim generate a.test") {
		t.Errorf("without keys, the DKIM comment is %q", comment)
	}
}
