// Package srs implements the Sender Rewriting Scheme for mail Posthouse
// relays on behalf of a sender outside its own domains: an alias's copies
// forwarded to foreign addresses, and what a filter redirects. Without it
// the receiving host checks SPF for the original sender's domain against
// our address and fails it.
//
// The forwarded copy's envelope sender becomes an address at our own
// domain (Options.Domain, by default the server's hostname) that encodes
// the original one, with a hash that only we can make, so that a bounce
// sent to it can be routed back and nobody can use it to relay elsewhere:
//
//	SRS0=HHHHHH=TT=orig.domain=orig-local@our.domain
//	SRS1=HHHHHH=first.hop==HHHH=TT=orig.domain=orig-local@our.domain
//
// This is the scheme of Shevek's "Sender Rewriting Scheme" paper as the
// usual implementations (libsrs2, postsrsd) write it, with two choices of
// ours:
//
//   - HHHHHH is HMAC-SHA256 over the lower-cased fields joined by "=",
//     under a secret key, truncated to HashLen (default 6) characters of
//     base32. Base32 has one letter case, so the hash survives a host that
//     lower-cases the whole address on the way back (some do), and
//     checking it is case-insensitive; 6 characters are 30 bits. The fields
//     are hashed with their separators, so no other split of the same
//     characters verifies.
//   - TT is the day of the rewrite (days since the Unix epoch, modulo
//     1024) in two base32 characters. An SRS0 address is valid for MaxAge
//     (default 21 days) after it was made; afterwards, or when it claims a
//     day in the future, Reverse refuses it (ErrExpired).
//
// A sender that already is an SRS0 address of another forwarder becomes
// SRS1 (the first hop and its SRS0 fields are kept, so a bounce goes back
// through that hop, which alone can check its own hash); an SRS1 sender
// keeps its first hop and gets our hash. A sender at our own SRS domain is
// left alone. Forward refuses (ErrTooLong) to make a local part longer than
// 64 octets (RFC 5321 §4.5.3.1.1): strict receivers refuse those, and the
// caller then sends with the original sender.
//
// Reverse checks one of our addresses and returns what it stands for:
// local@orig.domain for SRS0 (hash and age checked), SRS0…@first.hop for
// SRS1 (our hash checked; SRS1 carries no time of its own). Parsing is
// bounded: inputs longer than 512 octets are refused before anything else.
//
// The key is 32 random bytes, made once by LoadKey and kept in a file
// (cmd/posthouse: <data_dir>/srs.key, mode 0600). Losing it only makes
// bounces to addresses made before invalid; sharing it lets another server
// answer for our SRS addresses.
//
// With several nodes (the postgres backend) every node must rewrite with
// the same key: LoadKeyPostgres keeps it in the shared database instead.
package srs
