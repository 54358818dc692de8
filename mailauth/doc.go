// Package mailauth authenticates inbound mail: SPF (RFC 7208), DKIM (RFC
// 6376, through package dkim), DMARC (RFC 7489) and iprev (RFC 8601 §3), and
// renders the one Authentication-Results field (RFC 8601) that says what
// was found. It only evaluates: it decides nothing about a message (package
// inbound turns results into a delivery verdict), and it resolves through
// the small Resolver interface that *dns.Resolver satisfies, never through
// net.Lookup*.
//
// # SPF
//
// blitiri.com.ar/go/spf evaluates check_host() through our resolver,
// adapted to its *net.Resolver-shaped interface (our NXDOMAIN and NODATA
// become "not found", SERVFAIL and timeouts "temporary", a malformed name
// "not found"). The library keeps the RFC's limits (§4.6.4): 10 terms that
// cause DNS queries and 2 void lookups per evaluation, then permerror; 10
// MX names per mx mechanism; the ptr walk stops at 10 names; the %{p}
// macro expands to "unknown" without a query. The identity is MAIL FROM;
// for the null reverse-path it is postmaster@<HELO name> and the result is
// reported as smtp.helo (§2.4). A domain that is malformed or has one label
// gives none (§4.3). Each evaluation gives up after SPFTimeout (temperror).
//
// # DMARC
//
// The author domain is the domain of the one address in the one From
// field. None, several, or an unreadable one give dmarc=permerror with
// FromErr set (ErrNoFrom, ErrMultipleFrom, ErrBadFrom): large receivers
// refuse such mail, since a second From address is the classic way around
// DMARC, and so does package inbound.
//
// The record is looked up at _dmarc.<From domain>, then at
// _dmarc.<organizational domain> (golang.org/x/net/publicsuffix,
// EffectiveTLDPlusOne), and parsed by github.com/emersion/go-msgauth/dmarc;
// TXT records not starting with v=DMARC1 are ignored, and more than one
// left means no record (§6.6.3). SPF's domain (MAIL FROM, or HELO for the
// null sender) and each passing signature's d= are compared with the From
// domain, strictly (equal) or relaxed (same organizational domain) as the
// record's aspf and adkim say. The policy is p, or sp for a subdomain whose
// record was found at its organizational domain. pct is applied to a
// failing message by sampling (Checker.Sample, injectable): outside the
// sample, reject becomes quarantine and quarantine none (§6.6.4). A
// temperror in an SPF or DKIM check that would have aligned makes DMARC
// temperror rather than fail, and so does a record lookup that could not
// be answered: no policy is applied on a guess. A record that cannot be
// parsed is permerror and applies no policy.
//
// # iprev
//
// The PTR names of the client address (at most 10) are resolved forward;
// pass when one leads back to the address, fail when none does, permerror
// without a PTR name, temperror when a lookup failed and nothing passed.
//
// # Authentication-Results
//
// One field with our host name as authserv-id, one result per line: iprev
// (policy.iprev), spf (smtp.mailfrom or smtp.helo), dkim per signature
// (header.d, header.i; dkim=none unsigned), dmarc (header.from and
// policy.dmarc, the policy the record asks for). Formatting is
// go-msgauth/authres's; every value from the client is first bounded and
// cleaned (controls, backslashes and non-ASCII non-letters become '?'), so
// that authres's quoting is always correct and no line exceeds 998 octets.
package mailauth
