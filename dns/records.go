package dns

import (
	"fmt"
	"strings"
)

// Ports are the listening ports clients are told about in SRV records; 0
// means the service is off (published with target "." per RFC 6186 §4).
type Ports struct {
	Submissions, Submission, IMAPS, IMAP, POP3S, POP3 int
	// ManageSieve is published as _sieve._tcp (RFC 5804 §1.8).
	ManageSieve int
}

// DKIMKey is what Records needs of a DKIM key (package dkim's Key has it
// all; dns imports nothing of ours).
type DKIMKey struct {
	Algorithm string
	Selector  string
	Zone      string // the TXT record in zone-file syntax
}

// Record is one DNS record for an administrator to publish.
type Record struct {
	Comment string // why, shown above the record
	Zone    string // zone-file line
}

// Records lists what domain needs so that mail to it reaches hostname,
// mail from it passes SPF, DKIM and DMARC, and mail clients configure
// themselves (RFC 6186 SRV records, autoconfig/autodiscover names, and
// RFC 5804's _sieve._tcp for ManageSieve).
func Records(domain, hostname string, keys []DKIMKey, ports Ports) []Record {
	d := strings.ToLower(strings.TrimSuffix(domain, ".")) + "."
	h := strings.ToLower(strings.TrimSuffix(hostname, ".")) + "."
	var recs []Record
	add := func(comment, format string, args ...any) {
		recs = append(recs, Record{Comment: comment, Zone: fmt.Sprintf(format, args...)})
	}
	add("Mail for the domain goes to this server (RFC 5321 §5.1); "+h+" needs A/AAAA records and a matching PTR.",
		"%s 3600 IN MX 10 %s", d, h)
	add("SPF (RFC 7208): only the domain's MX hosts send its mail.",
		`%s 3600 IN TXT "v=spf1 mx -all"`, d)
	if len(keys) == 0 {
		add("DKIM: no key yet; run `posthouse admin dkim generate "+strings.TrimSuffix(d, ".")+"` and publish the record it prints.", "")
	}
	for _, k := range keys {
		add(fmt.Sprintf("DKIM (RFC 6376) public key, %s, selector %s.", k.Algorithm, k.Selector), "%s", k.Zone)
	}
	add("DMARC (RFC 7489): quarantine mail that fails SPF and DKIM alignment; add rua=mailto:… to receive aggregate reports.",
		`_dmarc.%s 3600 IN TXT "v=DMARC1; p=quarantine; adkim=r; aspf=r"`, d)
	add("Optional MTA-STS (RFC 8461): also serve https://mta-sts."+strings.TrimSuffix(d, ".")+"/.well-known/mta-sts.txt before publishing; change id with every policy change.",
		`; _mta-sts.%s 3600 IN TXT "v=STSv1; id=1"`, d)
	add("Optional TLS reporting (RFC 8460).",
		`; _smtp._tls.%s 3600 IN TXT "v=TLSRPTv1; rua=mailto:postmaster@%s"`, d, strings.TrimSuffix(d, "."))
	add("Client autoconfiguration (Thunderbird autoconfig, Outlook autodiscover) served by this server.",
		"autoconfig.%s 3600 IN CNAME %s", d, h)
	recs = append(recs, Record{Zone: fmt.Sprintf("autodiscover.%s 3600 IN CNAME %s", d, h)})
	srv := []struct {
		name string
		port int
	}{
		{"_submissions._tcp", ports.Submissions},
		{"_submission._tcp", ports.Submission},
		{"_imaps._tcp", ports.IMAPS},
		{"_imap._tcp", ports.IMAP},
		{"_pop3s._tcp", ports.POP3S},
		{"_pop3._tcp", ports.POP3},
	}
	for i, s := range srv {
		comment := ""
		if i == 0 {
			comment = "Service discovery for mail clients (RFC 6186, RFC 8314); implicit TLS preferred (lower priority number)."
		}
		prio := 0
		if !strings.HasSuffix(strings.TrimSuffix(s.name, "._tcp"), "s") {
			prio = 10 // plaintext+STARTTLS variants after implicit TLS
		}
		if s.port == 0 {
			// RFC 6186 §4: target "." says the service is not offered.
			recs = append(recs, Record{Comment: comment, Zone: fmt.Sprintf("%s.%s 3600 IN SRV 0 0 0 .", s.name, d)})
			continue
		}
		recs = append(recs, Record{Comment: comment, Zone: fmt.Sprintf("%s.%s 3600 IN SRV %d 1 %d %s", s.name, d, prio, s.port, h)})
	}
	const sieveComment = "ManageSieve (RFC 5804 §1.8), where Sieve filter editors (Thunderbird's Sieve add-on, Roundcube, sieve-connect) find the server."
	if ports.ManageSieve == 0 {
		add(sieveComment, "_sieve._tcp.%s 3600 IN SRV 0 0 0 .", d)
	} else {
		add(sieveComment, "_sieve._tcp.%s 3600 IN SRV 0 1 %d %s", d, ports.ManageSieve, h)
	}
	return recs
}
