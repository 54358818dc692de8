// Package delivery is the one path every local delivery takes: mail from
// SMTP (port 25, and submission on 587/465 to local users), the queue's
// local transport (retries, alias targets), and what later features hand
// back to us (Sieve redirects and vacation replies come in through the
// queue). It resolves recipients to accounts, runs an ordered list of
// filters over the message once, and stores one durable copy per account.
//
// It owns: the account a message lands in (auth's resolution: aliases,
// user+tag, catch-all, postmaster; smtpd still resolves at RCPT to refuse
// unknown users with 550 5.1.1, but the copy goes where the pipeline's
// resolution at delivery time says), composing filter verdicts, the
// Return-Path field (RFC 5321 §4.4) and the fields filters add or remove,
// and the
// mailbox and flags of the stored copy.
//
// It does not: speak SMTP (callers turn a Result's error into their reply:
// smtpd into the DATA reply, the queue into a per-recipient status and, in
// the end, a DSN), queue foreign recipients (its callers do; Outcome.Remote
// lists the foreign targets of aliases), retry (the
// queue does), or hold a message in memory: filters read the body through
// an io.SectionReader over the caller's spool file. smtpd and the queue
// each declare the one-method interface they call (Deliver, with this
// package's Request and Outcome); a *Pipeline satisfies both.
//
// # A delivery
//
// Deliver works in three phases, each complete before the next:
//
//  1. Resolve: each recipient address to accounts (every account once, with
//     the addresses that reach it) and foreign alias targets. An address
//     that no longer resolves gets an error wrapping auth.ErrNoSuchUser.
//  2. Filter: each filter's Check runs once per message, in order, with
//     every recipient; its Decision holds a Verdict for all recipients and
//     optionally one per account (applied after the one for all). Nothing
//     is written before every filter has answered, so a filter that fails
//     or panics (recovered, logged with its stack) fails the whole message
//     temporarily (ErrFilter) with nothing half-delivered. A filter's
//     output is checked like input (field syntax, reply codes, flag atoms,
//     sizes); a bad one counts as a failed filter.
//  3. Commit: per account, up to four at a time: the redirect, if any,
//     becomes one queue entry (durable), then the copy is stored (durable:
//     fsync'd and committed before Deliver returns). The caller replies
//     only after Deliver returns.
//
// # How verdicts compose
//
// Per recipient, in filter order:
//   - Reject wins: it is final, later verdicts are ignored, and the reply of
//     the first filter that rejected is the one reported (4xx: try again;
//     5xx: refused). No copy is stored and nothing is redirected. Once every
//     recipient is rejected, the remaining filters are not run.
//   - Discard is final but for a later Reject: no local copy, and the sender
//     is told the message was delivered. Redirects still go out.
//   - Keep, the zero Action, is no objection: the copy is stored.
//   - Mailbox and Flags come from the last filter that set them.
//   - Header fields add up. Each filter's fields go in front of the earlier
//     filters' (as if each had prepended its own, like trace fields), in
//     the order the filter gave them; Return-Path goes in front of all.
//     At most 16 KiB per copy in all.
//   - Removals add up (at most 100 FieldRefs per copy; see "Removing
//     fields").
//   - Copies come from the last filter that set them; appended fields add
//     up (with the fields on top, at most 16 KiB); commit hooks add up.
//   - Redirect addresses add up (deduplicated, at most 20). A redirect does
//     not cancel the local copy (redirect and keep); Discard with a
//     redirect forwards only. The redirected copy keeps the envelope sender
//     (the queue sends it in SRS form to foreign hosts when the sender is
//     not ours), carries the added fields, lacks the removed ones, and has
//     no Return-Path. A filter
//     that redirects must itself guard against loops (a redirect to a local
//     address comes back through the queue and this pipeline).
//
// A filed mailbox the account does not have means INBOX, not a new mailbox:
// that is the store's rule for delivery (mail is never refused for its
// folder), and a typo in a rule or a script must not litter accounts with
// mailboxes. Every account has Junk from the start. Only a Copy with
// Create (Sieve's fileinto :create, RFC 5490 §3.2) makes a missing mailbox.
//
// # Several copies, appended fields, commit hooks (for Sieve)
//
// Verdict.Copies replaces the one copy with several (Sieve's keep and
// fileinto each store one): the last filter that sets it decides; a Copy
// with no mailbox is the default place (the mailbox and flags earlier
// filters chose, the junk filter's Junk and $Junk, say, plus its own
// flags); copies into one mailbox are stored once with their flags
// united. Each copy is stored on its own: a failure after the first fails
// the account, and its retry stores the first again (a duplicate, not a
// loss). Verdict.Append adds fields after the message's last header field
// (Sieve's addheader :last). Verdict.Committed is called once the
// account's share is done or failed, so a filter can act only on mail
// that was delivered (a vacation response, duplicate tracking).
// Message.Planned shows a filter what the earlier ones decided for one
// account (their fields, mailbox, flags): the Sieve filter, last, reads
// the junk filter's per-account field and Junk verdict there.
//
// # Removing fields
//
// Verdict.Remove takes fields out of the copy: the message's own (a
// sender's forged X-Spam-Status, say) or ones an earlier filter added for
// every recipient. A FieldRef names the Index-th field of a name (1-based,
// names compared without regard to case) or, with Index 0, every one. It
// counts over the header the filter was shown: Message.Added on top, in
// that order, then the message's own fields; that is the header a milter
// is sent, so its SMFIR_CHGHEADER index passes through unchanged. A field
// that is not there is no error. A change is a removal and an added field:
// the new field goes on top with the filter's other fields, not where the
// old one was.
//
// Removals are not visible to later filters: Header, Body and Added show
// the message as it came and the fields added so far, and every filter's
// FieldRefs count over that, so two filters that each remove "the first
// X-Spam-Status" remove the same one. They are applied as each copy
// (and each redirected copy) is written: the header is scanned once,
// within its first MaxHeaderBytes, for the fields to remove, and the copy
// is streamed from the spool with their byte ranges (each field with its
// folds) left out; the message is never held in memory. The scan sees the
// fields a milter is sent: the header ends at an empty line, or at a line
// that is neither a field nor a fold. A field that does not end within
// the first MaxHeaderBytes, and any field after it, cannot be removed and
// stays; so do matches beyond the thousandth separate stretch of removed
// fields (logged).
//
// # One transaction per account
//
// An account's share is one redirect entry and one stored copy; its Result
// says whether both are durable. Recipients are not atomic across
// accounts: the mailstore has no multi-account transaction, so callers
// keep their own rules for a partial failure (smtpd's package doc:
// "Delivery and partial failure"; the queue requeues what failed). A
// redirect that went out before its account's copy failed goes out again
// on the retry: a duplicate is preferred to a loss.
//
// # Filters from the queue
//
// A message the queue delivers locally (a retry after a full mailbox, an
// alias's targets) runs through the filters again, with Envelope.Source
// SourceQueue and no Client: the filters' verdicts are not stored with the
// queue entry, and the fields they add are not part of the queued message,
// so every stored copy carries one set. A filter that needs the connection
// (SPF, a DNSBL) must decide what a queued message without one means.
//
// # Headers
//
// Message.Header parses the header once, on the first call, from at most
// MaxHeaderBytes (256 KiB, the bound smtpd uses); no filter means no parse.
// Hostile input (a 1 MiB field, NULs, endless short fields) costs no more
// than that bound; the header is then marked incomplete. This bound will
// follow the MIME parser's in mailstore when that lands.
package delivery
