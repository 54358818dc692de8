// Package dnscheck compares what a domain publishes in the DNS with what
// Posthouse needs, record by record: MX, the host's A/AAAA and PTR, SPF,
// DKIM, DMARC, autoconfig/autodiscover, the RFC 6186 and RFC 5804 SRV
// records, and MTA-STS/TLS-RPT when they are published. Each Result says
// right, missing, wrong or lookup failed, what was found, and the exact
// record to publish (dns.Records' zone line).
//
// It also holds what `posthouse admin dns` and the web console's DNS page
// both derive from the configuration (the ports clients are told about,
// the warnings about client setup), so the command line and the web say
// the same thing.
//
// Lookups go through the configured resolver (package dns); tests run
// dnstest on loopback. The package never changes anything.
package dnscheck
