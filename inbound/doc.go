// Package inbound is the delivery filter that authenticates mail from
// other servers and applies the [inbound] policy to it. It computes SPF,
// DKIM, DMARC and iprev once per message (package mailauth), adds one
// Authentication-Results field with the results to every stored copy, and
// turns failures into a verdict. It runs first among the filters
// (cmd/posthouse lists it before milters and the junk filter), so they can
// read its field.
//
// # Sources
//
//   - delivery.SourceSMTP (port 25): checked, as below.
//   - SourceSubmission, SourceSubmissions (587, 465): not checked and no
//     field added. The client is one of our users, authenticated by
//     password; whether they may use their From: address is the submission
//     server's check, not a DMARC question.
//   - SourceQueue: not checked and no field added. A message the queue
//     delivers locally is a retry of one smtpd accepted (after a partial
//     failure: a full mailbox), a redirect, or one of our own DSNs; none
//     has the SMTP client it arrived from, so SPF and iprev cannot be
//     evaluated. A retried copy therefore lacks the Authentication-Results
//     field its siblings got at arrival, and lands in INBOX even when its
//     siblings went to Junk: the verdict is not stored with the queue
//     entry. When every copy is rejected, smtpd refuses the message and
//     nothing is queued, not even the foreign targets of aliases among
//     the recipients; a permanent reject of some copies is never retried
//     through the queue (the sender gets a DSN at once).
//
// smtpd keeps the one thing that must happen before any filter reads the
// message: removing Authentication-Results fields that claim our
// authserv-id (RFC 8601 §5). Mail smtpd relays or queues for foreign alias
// targets carries no field of ours.
//
// # Rules
//
// The strongest verdict of these rules wins (reject, then 451, then Junk,
// then keep):
//   - From: with no address, several, or an unreadable one: 550 5.7.1,
//     always (dmarc=permerror in the field). Gmail refuses the same mail.
//   - One of our local domains (auth's) as the From: domain or the MAIL
//     FROM domain, without an SPF pass or a DKIM pass in relaxed alignment
//     with it: spoof_own_domains, 550 5.7.1 "not authorised to use the
//     domain" by default, or Junk.
//   - DMARC fail whose disposition (after pct) is reject: 550 5.7.1 naming
//     DMARC and the domain; with dmarc_reject = false, Junk. Quarantine:
//     Junk. A pass decides: an SPF fail is then ignored (mail forwarded
//     with its DKIM signature intact).
//   - SPF fail where DMARC decided nothing (no record, p=none, or pct left
//     the message out): spf_fail, Junk by default, or 550 5.7.23, or
//     accept.
//   - iprev fail or permerror: nothing by default (iprev = "accept": only
//     reported); "junk" files it into Junk.
//
// Junk means the Junk mailbox with the $Junk keyword.
//
// # DNS trouble
//
// A temperror never passes silently and never becomes a permanent
// refusal: where it decides the outcome, the message gets 451 4.4.3
// (RFC 3463 directory server failure; 4.7.24 for SPF, the code RFC 7372
// registers for an SPF temperror) and the sender retries. It decides when a DMARC record could not
// be read and no strictly aligned pass makes the record moot; when an SPF
// or DKIM check that would have aligned with a DMARC domain (p other than
// none), or with one of our own domains, ended in temperror; and when SPF
// itself ended in temperror, DMARC decided nothing and spf_fail is not
// "accept". An iprev temperror is only reported. All of one message's DNS
// work is bounded by CheckTimeout; past it, lookups end in temperror.
package inbound
