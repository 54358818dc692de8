package dnscheck

import (
	"net"
	"strconv"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/dns"
)

// ListenPort returns the port of a [listen] address, 0 when disabled or
// unreadable.
func ListenPort(addr string) int {
	if addr == "" {
		return 0
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// Ports are the client ports the configuration offers, as SRV records
// publish them.
func Ports(cfg *config.Config) dns.Ports {
	return dns.Ports{
		Submissions: ListenPort(cfg.Listen.Submissions),
		Submission:  ListenPort(cfg.Listen.Submission),
		IMAPS:       ListenPort(cfg.Listen.IMAPS),
		IMAP:        ListenPort(cfg.Listen.IMAP),
		POP3S:       ListenPort(cfg.Listen.POP3S),
		POP3:        ListenPort(cfg.Listen.POP3),
		ManageSieve: ListenPort(cfg.Listen.ManageSieve),
	}
}

// ZoneKeys turns signing keys into what dns.Records and Run need.
func ZoneKeys(keys []dkim.Key) []dns.DKIMKey {
	out := make([]dns.DKIMKey, len(keys))
	for i, k := range keys {
		out[i] = dns.DKIMKey{Algorithm: k.Algorithm, Selector: k.Selector, Zone: k.ZoneRecord()}
	}
	return out
}

// ClientSetupWarnings says what keeps mail clients from setting themselves
// up with the configuration as it is: the autoconfig and autodiscover
// records point here, so http/https must serve them.
func ClientSetupWarnings(cfg *config.Config) []string {
	var w []string
	switch {
	case cfg.Listen.HTTP == "" && cfg.Listen.HTTPS == "":
		w = append(w, "[listen] http and https are off: the autoconfig/autodiscover records lead Thunderbird and Outlook nowhere, "+
			"and users must type the settings (set http = \":80\" and https = \":443\")")
	case cfg.Listen.HTTPS == "":
		w = append(w, "[listen] https is off: Thunderbird finds its settings over http, but Outlook fetches them only over HTTPS "+
			"(set https = \":443\")")
	}
	if cfg.Listen.HTTPS != "" && !cfg.TLS.ACME && cfg.TLS.CertFile == "" {
		w = append(w, "https serves the self-signed certificate, which Outlook refuses without saying so and other clients "+
			"ask the user to accept: set [tls] acme = true or cert_file/key_file")
	}
	return w
}
