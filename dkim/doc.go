// Package dkim owns Posthouse's DKIM (RFC 6376): signing and its keys (key
// generation, storage and listing, the DNS record each key needs, the
// choice of signing domain, the signature itself) and the verification of
// inbound signatures, all with github.com/emersion/go-msgauth. It does not
// decide when a message is signed or where the signature goes (the queue
// signs at Enqueue, once, and keeps the fields beside the spool file), nor
// what is done with a verdict (smtpd writes Authentication-Results), and it
// resolves nothing itself: verification takes a TXT lookup function (the
// server passes its one configured resolver).
//
// # Keys
//
// Keys (Ed25519, RFC 8463, and RSA-2048) are per domain and selector; a new
// key's default selector names its algorithm and month ("ed202611",
// "rsa202611"), so a rotation gets a new selector. Keys live in the
// dkim_keys table of queue.sqlite, private keys as PKCS #8 DER: that
// database is created (and kept) mode 0600 by the queue, whose migrations
// create the table. Keys takes the opened database, so admin commands and
// the running server share it as they share the queue. With [store]
// backend = "postgres" the queue opens the store in that database instead
// (OpenPostgresKeys: a dkim_keys table there, schema component "dkim"), so
// a key generated on one node signs the mail of every node.
//
// # Signing
//
// A message is signed with every key of the domain of its header From (or,
// without a usable From, of the envelope sender): relaxed/relaxed, SHA-256,
// the RFC 6376 §5.4.1 fields with From oversigned, so a second From added
// in transit breaks the signature (RFC 6376 §8.15); listed fields absent
// from the message are signed as absent.
//
// # Verification
//
// Verify checks at most MaxVerifications signatures per message (the DNS
// queries one message can cause are bounded), within VerifyTimeout, and
// names each outcome as RFC 8601 §2.7.1 does: pass, fail, permerror (no
// key record, bad signature syntax) or temperror (the resolver could not
// answer: RFC 6376 §6.1.2 asks the verifier to try again later, so a DNS
// failure of ours is never held against the sender).
package dkim
