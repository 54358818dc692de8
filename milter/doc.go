// Package milter asks mail filters that speak the milter protocol
// (Sendmail's and Postfix's: rspamd, OpenDKIM, ClamAV's clamav-milter…)
// about each message, as a delivery.Filter. It is the client side of
// github.com/emersion/go-milter; each configured milter is one Filter,
// listed by cmd/posthouse after the inbound authentication filter and
// before the junk filter.
//
// # Which mail
//
// Mail from port 25 (delivery.SourceSMTP) always. Mail from the
// submission ports (587, 465) only with Options.Submission: Postfix
// applies smtpd_milters to both, but our users' own mail needs no spam
// check, and a milter that refuses it would bounce our users' mail;
// turn it on for a milter that signs or archives. Never mail the queue
// delivers locally (delivery.SourceQueue: a retry after a full mailbox):
// the milter saw it when it arrived, and asking again without the
// connection would judge it differently.
//
// # One conversation per message
//
// Each message opens its own connection (go-milter has no pooling):
// negotiate, connect (the client's address and its host name: the name
// its PTR record gives if that name resolves back to the address, else
// "unknown", as Postfix tells milters), HELO, MAIL FROM, RCPT TO for
// each envelope recipient that reached a local account, the header
// fields, the body, end of message. Macros go with each step as Postfix
// sends them: j (our host name), {daemon_name} (the listener: smtp,
// submission, submissions), v, {client_addr}, {client_name},
// {tls_version} and {cipher} with TLS, i (the message id, also at end
// of message), {mail_addr}, {auth_authen} for an authenticated user, and
// {rcpt_addr}. SMFIC_DATA is not sent (go-milter's client has no call
// for it) and SMFIC_UNKNOWN never applies.
//
// The message is read from the spool as it is sent and never held whole:
// one header field at a time (at most 64 KiB of it; its folds as "\n"
// plus white space, as Sendmail and Postfix send them), then the body in
// chunks of up to 64 KiB with CRLF line endings. The header ends at the
// empty line, or at a line that is neither a field nor a fold, or after
// 256 KiB (delivery.MaxHeaderBytes); the rest goes as body.
//
// Negotiation offers the actions a verdict can carry out (add and change
// header fields, quarantine) and every protocol step a milter may skip
// or leave unanswered; go-milter then skips what the milter does not
// want. SMFIP_SKIP is not offered: go-milter v0.5.0's client takes an
// SMFIR_SKIP answer for an error. A milter of protocol version 2 to 5
// is spoken to with that version's options after it turns down 6.
//
// # Answers and verdicts
//
//   - accept, or continue at end of message: Keep, with the changes below.
//     Accept before the end of the message ends the conversation there.
//   - reject: Reject, 550 5.7.1. SMFIR_REPLYCODE: the milter's code (4xx
//     or 5xx; 421 becomes 451), enhanced code and text (multi-line
//     replies joined; printable ASCII, at most 200 octets); a code that
//     is not 4xx or 5xx is a protocol error.
//   - tempfail: Reject, 451 4.7.1.
//   - discard: Discard (no copy; the sender is told it was delivered).
//   - reject or tempfail at RCPT refuses that recipient only: an account
//     all of whose addresses were refused gets the reply; if every
//     recipient was, the conversation ends there.
//   - quarantine: filed into Junk, flagged $Junk.
//   - add header, insert header: the field is prepended to the stored
//     copy (delivery.Verdict prepends; the milter's position is not
//     kept); at most 50 fields and 8 KiB per milter, each folded with
//     CRLF and checked (a malformed one is dropped and logged).
//   - change header (index, name, value): the index-th field of that name
//     (1-based, any case; 0 means the first, as in libmilter) is removed
//     from every copy, and, unless the value is empty (a deletion), the
//     new value is prepended like an added field: a changed field moves
//     to the top. The index counts over the header the milter was sent,
//     the fields earlier filters added (our Authentication-Results) on
//     top, so it may name one of those; the pipeline removes that one
//     (delivery.FieldRef counts the same way). An index past the last
//     field of the name removes nothing. At most 50 changes per milter.
//     A field that does not end within the header's first 256 KiB cannot
//     be removed (delivery's bound).
//   - replace body: not applied; logged once per milter.
//   - change sender, add or remove recipients: not offered, ignored.
//
// # Failures
//
// Options.Timeout (30 s) bounds the whole conversation, from dialing to
// the last answer: every deadline go-milter sets is kept within it, and
// the session's context ending cuts the connection at once. A milter
// that is down, times out, sends garbage or breaks the protocol gets
// the on_error action: tempfail (451 4.7.1, the default: no message
// goes past the filter unnoticed) or accept (delivered unchecked); both
// are logged at error level. Only the session's own context ending makes
// Check return an error.
package milter
