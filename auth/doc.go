// Package auth owns Posthouse's system database (users.sqlite under
// data_dir): domains, users and aliases; it checks passwords, resolves
// recipient addresses, and serves SASL PLAIN and LOGIN to smtpd, imapd and
// pop3d alike. It does not know which protocol is asking, and it never logs
// or stores a password.
//
// # Schema
//
// Numbered migrations (mailstore/sqlitedb, PRAGMA user_version) create:
// domains(name, created); users(address, domain, password_hash, quota,
// disabled, created); aliases(address or "@domain", domain, created) with
// alias_targets(position, target). Addresses are stored normalized by
// NormalizeAddress (lower case, dot-atom local part, ASCII domain). The file
// is created with mode 0600. WAL and a busy timeout make it safe for
// posthouse admin to change it while posthouse serve runs; serve sees the
// change at its next lookup (nothing is cached across processes except the
// credential cache below, which re-checks the stored hash every time).
//
// # Passwords
//
// New hashes are argon2id PHC strings with the OWASP baseline m=19 MiB, t=2,
// p=1, a 16-byte salt and a 32-byte key. Imported argon2id (with other
// parameters, bounded to m ≤ 256 MiB, t ≤ 16, p ≤ 16) and bcrypt hashes
// ($2a$, $2b$, $2y$, cost 4–15) are verified too, and replaced by our
// argon2id form at the next successful login. At most MaxConcurrentHashes
// (default GOMAXPROCS, at least 2) hashes run at once, which bounds memory
// (19 MiB each) and keeps a login flood from starving the rest of the server.
// An unknown user is checked against a dummy argon2id hash so that it costs
// the same time as a known one. A disabled user with the right password gets
// ErrBadCredentials, like a wrong password.
//
// # Credential cache
//
// IMAP clients open several connections and log in on each. A verified
// outcome is remembered for CacheTTL (default 5 minutes, at most 10 000
// entries), keyed by HMAC-SHA256(account, password) under a random key made
// at Open, never by the password itself. An entry is used only while the
// user's row holds the same hash it was verified against, so SetPassword,
// SetPasswordHash or RemoveUser — from this process or from posthouse admin —
// take effect at once; disabled is read from the row at every login. Failed
// outcomes are remembered too: a client retrying a stale password does not
// cost a hash per retry. The price: while an entry lives, someone who can
// read this process's memory (key included) could test guesses against it at
// HMAC speed rather than argon2id speed. A cache hit answers in tens of microseconds instead
// of tens of milliseconds (see BenchmarkAuthenticate).
//
// # Throttling
//
// Counters live in memory (per process), count only distinct failed
// credentials (the same wrong password retried by a misconfigured phone
// counts once per window), and are tested with Options.Now:
//
//   - Per remote address (an IPv4 address, or an IPv6 /64): after 10 distinct
//     failures within 10 minutes, every attempt from it is ErrThrottled,
//     without checking the password, until the oldest of those failures is 10
//     minutes old. At most 10 minutes for a client behind the same address.
//     An attempt counts from the moment it starts (and is forgotten again if
//     it succeeds or is cancelled), so guesses sent in parallel over many
//     connections cannot all slip in before the first one fails.
//   - Per account (any source): after 5 distinct failures within 15 minutes,
//     every attempt for the account — right or wrong password, so the delay
//     is no oracle — waits 250 ms, doubling with each further failure, at most
//     4 seconds, before its password is checked. Never a refusal: the real
//     user is slowed, not locked out, while someone guesses their password.
//   - A successful login from an address forgets that address's failures for
//     that account, in both counters.
//
// Throttling starts are logged at Warn (once per episode per address),
// successes and failures at Info with user and remote.
//
// # Resolution
//
// Resolve tries, in order: a user; an alias; for user+tag@domain the same
// two for user@domain; the domain's catch-all "@domain". Aliases expand
// recursively up to MaxAliasDepth, loops are cut, local targets become
// mailstore accounts and foreign ones are returned for the queue. Disabled
// users still receive mail: disabling stops logins, not delivery. RFC 5321
// §4.5.1 wants postmaster at every domain: postmaster@domain with nothing
// defined for it, and the bare "postmaster", go to the first domain (by
// name) that does define one, so a single postmaster can serve them all.
package auth
