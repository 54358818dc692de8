// Package dns is Posthouse's one DNS resolver: every DNS query the server
// makes (MX and A/AAAA for outbound delivery, TXT for DKIM/SPF/DMARC, PTR for
// connecting clients) goes through a Resolver talking to one configured
// recursive nameserver ("host:port" from [dns] resolver, or the first
// nameserver of /etc/resolv.conf when that is empty).
//
// Why not net.Resolver: tests and operators must be able to point every
// lookup at a chosen server (tests run dnstest.Server on 127.0.0.1), and
// delivery needs to tell "the domain does not exist" (NXDOMAIN: permanent),
// "the name exists but has no such record" (NODATA: e.g. fall back from MX to
// A/AAAA) and "the resolver failed" (SERVFAIL, timeout: temporary) apart,
// which the standard library blurs.
//
// Queries go over UDP with EDNS0 (1232-byte buffer, the DNS flag day 2020
// value) and are retried over TCP when the answer comes back truncated. Each
// exchange has a timeout (default 5 s) and honours the caller's context.
//
// Records is the other direction: the records an administrator publishes
// for a domain (MX, SPF, DKIM, DMARC, client autoconfiguration and RFC 6186
// SRV), which `posthouse admin dns` prints. It takes DKIM keys as plain
// values so that the package imports nothing of ours.
//
// dnstest runs a loopback DNS server for tests.
package dns
