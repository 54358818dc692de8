// Package gate is Posthouse's SMTP-time admission checks for inbound mail on
// port 25, decided before the message is sent: DNS block and allow lists
// (DNSBL/DNSWL, RFC 5782), greylisting (RFC 6647) with automatic
// allow-listing, and a message rate per envelope sender. smtpd asks it
// through its smtpd.Gate interface (cmd/posthouse adapts a *Gate) at
// connect, MAIL and RCPT; smtpd knows nothing of lists or triplets, and
// this package nothing of SMTP sessions.
//
// # Who is checked
//
// Only the MTA listener (port 25) has a gate; submission (587, 465) never
// does, and smtpd skips it for an authenticated session. Clients in
// Options.Exempt ([auth] trusted_networks: webmails, local relays) are not
// checked at all. Recipients whose local part is postmaster are never
// refused by the gate (RFC 5321 §4.5.1 requires postmaster to be
// reachable; a listed or greylisted sender must be able to ask why), which
// also means DSNs to postmaster are never greylisted. Everything here runs
// after smtpd's own RCPT checks (relaying, unknown users, full mailboxes),
// so the gate never records a triplet for an address that would be refused
// anyway.
//
// # DNS lists
//
// At connect, every zone of Options.DNSWL and Options.DNSBL is asked at
// once for the client's address (IPv4: the octets reversed,
// "2.0.0.127.zone"; IPv6: the 32 nibbles reversed, RFC 5782 §2.4), through
// the configured resolver (package dns; never the system's), while the
// client sends EHLO and MAIL. The first RCPT waits for the answers, at most
// Options.LookupTimeout (10 s) in all. An A record in 127.0.0.0/8 is a
// listing. 127.255.255.0/24 is a list's way of refusing the query
// (Spamhaus answers 127.255.255.254 to queries that come through a public
// resolver, 127.255.255.255 over its free volume), and an answer outside
// 127.0.0.0/8 means a resolver rewrote NXDOMAIN: both are logged once per
// zone at Error and ignored. NXDOMAIN is "not listed". A temporary failure
// (SERVFAIL, timeout) is logged at most once per zone every 10 minutes and
// the client is treated as unlisted: the lists fail open, so a list that
// goes down never stops mail.
//
// A client on any DNSWL is neither refused by a DNSBL nor greylisted. A
// client on a DNSBL gets "554 5.7.1 Service unavailable; client [ip]
// blocked using zone; <the list's TXT record>" for every recipient but
// postmaster (the TXT, which lists use to say how to be delisted, is cut to
// 200 octets of printable ASCII). The refusal is given at RCPT rather than
// in the greeting, as an MTA using Postfix's reject_rbl_client in its
// recipient restrictions does: clients read a refused RCPT as a verdict on
// their mail and bounce it with our text, while a refused greeting is
// often taken for an unavailable server and retried; and the log line can
// name the sender and recipient. Answers are not cached beyond the
// connection: the recursive resolver caches them for their TTL.
//
// # Greylisting
//
// Off unless Options.Greylist is set. A triplet is the client network (the
// IPv4 /24 or the IPv6 /64, since large senders retry from another address
// of the same pool), the envelope sender and the recipient, compared in
// lower case. Its first attempt gets "451 4.7.1 Greylisted, try again
// later"; so does a retry within the delay (5 minutes; an early retry does
// not restart it). A retry after the delay and within the retry window (24
// hours; later, it counts as a new first attempt) passes, and the client
// network with the sender's domain is allow-listed: the next messages from
// that domain through that network pass at once, to every recipient. An
// allow-list entry lasts 35 days from its last use. The null sender
// (bounces, DSNs) is greylisted like any other, its "domain" being empty:
// bounces come from MTAs with queues, which retry, and backscatter is what
// greylisting filters best.
//
// The state is in its own SQLite database, data_dir/greylist.sqlite
// (mailstore/sqlitedb: WAL, one writer), not in users.sqlite: it is
// written at the rate spam arrives, it is disposable (deleting it only
// greylists known senders once more) and it should not contend with, or
// be backed up with, the user database. synchronous=NORMAL for the same
// reason. Checking an allow-listed sender is one indexed read; its
// last-use time is written at most daily. A sweep (hourly, and early when
// a tenth of the bound of new triplets arrived) deletes first attempts
// older than the retry window and allow-list entries past their time,
// then the oldest rows beyond 100 000 of each, so a flood cannot grow the
// file without bound. A database error lets the recipient through and is
// logged at Error.
//
// With GreylistOptions.Postgres (the postgres backend, several nodes
// behind one MX) the same tables live in that database instead
// (greylist_triplets, greylist_allowed; schema component "greylist"), so a
// retry that reaches another node than the first attempt passes. Each
// check of a triplet holds an advisory lock on it for its transaction, as
// SQLite's single writer orders them on one node.
//
// # Sender rate
//
// With Options.MaxMessagesPerSender > 0, each envelope sender address
// (compared in lower case) may start that many transactions per
// Options.RateWindow (an hour); the null sender is counted per client
// address (IPv4, or IPv6 /64) instead. Over it, MAIL gets "450 4.7.1 Too
// many messages from this sender, try again later" and the sender's queue
// retries later. It is a token bucket (auth/limit's Rate, the one behind
// the connection rate): a burst of the limit, refilled evenly over the
// window. It is in memory (a restart forgets it) and holds at most 65 536
// senders; past that, new senders go uncounted until buckets refill, since
// a flood of that many distinct addresses is not what a per-sender limit
// can stop. Each MAIL counts, whatever becomes of the message.
//
// # Sources
//
// The gate sees SMTP sessions only: mail from submission and the queue's
// own messages (DSNs, redirects) never pass through it.
package gate
