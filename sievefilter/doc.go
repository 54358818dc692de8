// Package sievefilter is the delivery filter that runs users' Sieve
// scripts (package sieve, kept by package sievestore) and the
// administrator's out-of-office on every local delivery, and carries out
// what they decide through the pipeline (package delivery) and the queue.
//
// It owns: mapping a sieve.Result onto a delivery.Verdict, the vacation
// response (its message and its tracking), redirect loop detection, and
// where spamtest's verdict comes from. It does not: parse or run the
// language (package sieve), store scripts (sievestore), store copies or
// queue redirects (delivery), or send mail (the queue).
//
// # Place in the pipeline
//
// Last, after inbound authentication, the milters and the junk filter, so
// that a script sees their fields (Authentication-Results, X-Posthouse-Junk)
// on top of the message, as the stored copy has them, and the implicit
// keep goes where they put the copy (Junk for junk). An account without an
// active script or an out-of-office costs two indexed queries.
//
// # Actions
//
//   - keep and the implicit keep: a copy in the default place (INBOX, or
//     Junk when a filter before us said junk) with its flags;
//     fileinto: a copy in that mailbox (a missing one means INBOX, unless
//     :create, RFC 5490 §3.2); each copy its own flags (RFC 5232).
//   - discard: no copy (RFC 5228 §4.5: it only cancels the implicit keep).
//   - reject and ereject (RFC 5429): the message is refused for this
//     account with 550 5.7.1 and the reason (at SMTP time when smtpd is
//     delivering; a DSN from the queue when a retry runs the script). The
//     reason goes on one line of ASCII ("?" for the rest), at most 300
//     octets.
//   - redirect: through the queue with the original envelope sender (the
//     queue sends it in SRS form to foreign hosts). At most
//     sieve.Options.MaxRedirects per run. Each redirected copy (and the
//     account's stored copy, if any) carries TraceField naming the
//     account; a message that comes back to an account it already left,
//     or that went through MaxRedirectHops redirects, is kept instead and
//     the loop is logged.
//   - addheader/deleteheader (RFC 5293): fields on top, :last fields after
//     the header, deletions of the message's own fields and of fields
//     the filters before us added for every recipient.
//   - A runtime error, a script that no longer compiles, or a database
//     failure: the message is kept (implicit keep) and the error logged
//     with the account; mail is never lost to a script.
//
// # Spam verdict
//
// spamtest and spamtestplus (RFC 5235) read the topmost X-Posthouse-Junk
// field the junk filter added for this delivery (never one the message
// brought: forged ones lie further down) and count a Junk verdict (the
// $Junk keyword, from the junk filter or the inbound policy) as certain
// spam. Without either, the message is untested.
//
// # Vacation
//
// A user's vacation action (RFC 5230, :seconds of RFC 6131) and the
// administrator's out-of-office (posthouse admin vacation set: a subject,
// a message, optional dates, compiled into a one-line vacation script so
// it makes the same checks) both apply; one message gets at most one
// response, the out-of-office's when it is on. No response to the null
// sender, to automated senders, to list mail (List-Id and the other
// List- fields), to Precedence bulk, junk or list, to Auto-Submitted
// other than "no", to our own address, when the user is not in To, Cc or
// Bcc (nor in :addresses), nor to mail judged junk (backscatter). The
// response goes through the queue with the null reverse-path (RFC 3834
// §3.3), From the user or :from, Subject "Auto: " and the original's or
// :subject, In-Reply-To and References, Auto-Submitted: auto-replied; a
// text/plain body (quoted-printable when not ASCII), or with :mime the
// reason as its MIME entity. Each (handle, sender) is answered once per
// :days or :seconds (bounded by sieve.Options), remembered in sievestore;
// the claim is made after the copy is stored (delivery's commit hook), so
// a delivery that failed and is retried answers once.
//
// Duplicate ids (RFC 7352) are recorded in the same hook, only for
// messages that were delivered.
package sievefilter
