// Package dkim owns Posthouse's DKIM signing (RFC 6376) and its keys: key
// generation, storage and listing, the DNS record each key needs, the
// choice of signing domain, and the signature itself (with
// github.com/emersion/go-msgauth). It does not decide when a message is
// signed or where the signature goes (the queue signs at Enqueue, once, and
// keeps the fields beside the spool file), and it makes no DNS queries.
//
// # Keys
//
// Keys (Ed25519, RFC 8463, and RSA-2048) are per domain and selector; a new
// key's default selector names its algorithm and month ("ed202611",
// "rsa202611"), so a rotation gets a new selector. Keys live in the
// dkim_keys table of queue.sqlite, private keys as PKCS #8 DER: that
// database is created (and kept) mode 0600 by the queue, whose migrations
// create the table. Keys takes the opened database, so admin commands and
// the running server share it as they share the queue.
//
// # Signing
//
// A message is signed with every key of the domain of its header From (or,
// without a usable From, of the envelope sender): relaxed/relaxed, SHA-256,
// the RFC 6376 §5.4.1 fields with From oversigned, so a second From added
// in transit breaks the signature (RFC 6376 §8.15); listed fields absent
// from the message are signed as absent.
//
// Verification of inbound mail is still smtpd's (authres.go, through its
// own TXTResolver interface): moving it here would give smtpd's Options a
// new interface for cmd/posthouse to fill, a change to smtpd's server that
// belongs with the SMTP session work, not with this package.
package dkim
