// Package smtpd is Posthouse's SMTP server: inbound mail on port 25
// (ModeMTA) and message submission on 587 (ModeSubmission, STARTTLS) and
// 465 (ModeSubmissions, implicit TLS), built on github.com/emersion/go-smtp.
// It owns the policy (local domains, relay, size, recipients, sender
// ownership), the trace headers we add at SMTP time, and the one DATA reply
// for an accepted message: local copies are made by the delivery pipeline
// (Options.Delivery: a *delivery.Pipeline), foreign
// recipients become a queue entry. It does not store mail itself, deliver
// to remote hosts (package queue does), or know anything of IMAP or POP3.
//
// # Listeners and modes
//
// One go-smtp Server per listener: one mode, one TLS configuration, one set
// of limits. Package server accepts the connections (backoff, connection
// ids, registry, limits from Options.Conns: per address, in total and in
// rate; over a limit a client gets "421 4.7.0" and is closed, or is just
// closed on 465 where it expects a TLS handshake) and hands each to
// go-smtp's loop through a server.Handoff, wrapped in our edge, conn.go:
// the net.Conn go-smtp speaks through. The edge runs TLS itself (the
// handshake on 465; STARTTLS on 25 and 587, which go-smtp, given no TLS
// config, refuses and the edge then performs), so it sees plain text both
// ways and can fix replies, count commands and end a session at a command
// boundary; it also keeps the logger, the DATA deadline and the cuts of
// the two-phase shutdown. go-smtp makes the session at the first EHLO;
// it lives on across STARTTLS (the TLS state is the connection's), and after
// STARTTLS MAIL and AUTH need a new EHLO (503 5.5.1, RFC 3207 §4.2). What the
// client pipelined after STARTTLS in plain text is dropped: a read never
// goes past a STARTTLS line. STARTTLS with parameters is 501 5.5.4, inside a
// transaction 503 5.5.1, once TLS is up 503 5.5.1.
//
//   - ModeMTA: no AUTH; a recipient must resolve (aliases, user+tag,
//     catch-all) to a local account or to an alias's foreign targets;
//     unknown local users get 550 5.1.1 at RCPT, foreign domains 554 5.7.1.
//   - ModeSubmission / ModeSubmissions: AUTH PLAIN and LOGIN, offered only
//     once TLS is up (AUTH before STARTTLS: 538 5.7.11); MAIL before AUTH:
//     530 5.7.0 (before STARTTLS, RFC 3207's "Must issue a STARTTLS command
//     first", also 530 5.7.0); the sender must belong to the user or to an alias the user
//     receives (553 5.7.1); foreign recipients go to the queue. Missing
//     Message-ID and Date are added (RFC 6409 §8).
//
// # Who may send as whom (submission)
//
// One rule, Directory.CanSendAs (auth: the user's own address and its
// +tag forms, aliases that reach the user, send-as grants), applies to
// MAIL FROM (553 5.7.1 at MAIL; the null sender too, since a user's
// message is no bounce) and, at the end of DATA, to every address in every
// From field and in Sender when present (sendas.go): 553 5.7.1 naming the
// address ("From address <x> not owned by authenticated user u"). Group
// syntax counts its members; a Sender the user owns does not make a
// foreign From acceptable (From is what recipients see and DMARC
// aligns). A message without From gets "From: <envelope sender>" (RFC
// 5322 §3.6.2 requires one; the envelope sender is already checked); a
// From or Sender that does not parse, a From with no address (an empty
// group), more than 50 addresses, a field over 16 KiB or a header we could
// not read whole (over 256 KiB) is refused with 550 5.6.0: a careful
// MSA does not pass on what it cannot check. Resent-From does not replace
// the check: redirecting someone else's message keeps their From, which
// is refused; forward it instead. Port 25 checks none of this.
//
// # SRS addresses
//
// With Options.SRS (package srs), a RCPT to an SRS address at our SRS
// domain is reversed instead of resolved: a valid one, with the null
// sender, is accepted and queued to the original sender (a bounce of mail
// an alias forwarded, see package queue); an invalid or expired one is
// 550 5.1.1, and mail that is not a bounce 550 5.7.1 (else SRS addresses
// would relay for anyone holding one). SRS addresses of other domains are
// ordinary foreign addresses.
//
// TLS session tickets are always off in our copy of the TLS config: senders
// on Microsoft's platform abort STARTTLS against Go's crypto/tls otherwise.
//
// # Limits and timeouts
//
// Below the disk reserve (Options.Space, package diskspace) MAIL and RCPT
// get 452 4.3.1 (RFC 3463 "mail system full"), before the client sends a
// message; a transaction already past RCPT is finished inside the
// reserve. A write that finds no space (ENOSPC, SQLITE_FULL) gets 452 4.3.1
// instead of the generic 451 4.3.0.
//
// MaxMessageBytes is advertised as SIZE and enforced on MAIL SIZE=, on DATA
// and on BDAT (552 5.3.4). MaxRecipients gives 452 4.5.3. MaxLineLength
// (1000 octets with CRLF, RFC 5321 §4.5.3.1.6) applies to command and
// message lines alike, as go-smtp applies one limit to both, counted on
// the wire with one octet more for a message line's transparency dot,
// which the RFC does not count (so a 999-octet line slips through): an
// over-long
// command line gets 500 5.5.2 and the connection is closed; an over-long
// message line gets 554 5.6.0 for the message, then the connection is
// closed because the rest of the line cannot be resynchronised. Command
// lines ending in a bare LF are tolerated (go-smtp reads them with
// net/textproto; some scripts send them, and a command line cannot smuggle
// anything); only message content must be strict CRLF. Every read
// has a deadline: CommandTimeout for each command (go-smtp renews it per
// line; this also bounds the TLS handshakes and each BDAT chunk), and
// DataTimeout for a whole DATA upload from the 354 on, so a client trickling
// bytes cannot hold a connection for longer. A full mailbox gives 452 4.2.2
// at RCPT (a message declared larger than the whole quota: 552 5.2.2).
// A connection is closed with 421 4.7.0 after 3 failed AUTH attempts, 20
// refused recipients (address harvesting), 4 syntax errors (go-smtp's
// count), or MaxJunkCommands commands that did not advance a mail
// transaction (anything but an accepted MAIL or RCPT, DATA or BDAT: NOOP,
// RSET, VRFY, HELP, EHLO, refused and unknown commands…; an accepted
// message starts the count over; default 100, Postfix's
// smtpd_junk_command_limit). MaxSessionDuration (default 30 minutes)
// ends a connection with 421 4.4.2 at the next command; a message being
// received is never cut, by this or by anything else at a boundary.
//
// The connection limits count 25, 587 and 465 together when cmd shares one
// limit.Conns between them (nil Options.Conns: no limits; cmd builds it
// from [limits]). Past the connection rate (max_connection_rate, default
// 60 a minute per address) a client gets 421 4.7.0 at connect. When every
// slot is taken,
// auth/limit may hand a newcomer the slot of the longest-idle connection of
// the address holding the most (see its doc); that connection gets
// 421 4.7.0 and is closed, at once if it waits for a command, else at its
// next command boundary. So idle sessions from a few addresses cannot keep
// a sender from another address out.
//
// # Message data
//
// A body of less than 64 KiB (most mail) is held in one pooled buffer until
// it is delivered, at most 256 of them at once (16 MiB); a larger body, or
// any past that, is streamed into a spool file in SpoolDir, so memory stays
// bounded whatever clients send. Keeping 10 KB bodies out of the file took
// one SMTP connection from 747 to 772 deliveries a second (three
// alternating pairs), the file's pages being written back by the store's
// syncfs (mailstore/maildir, journal.go) at every batch otherwise. The
// file is unlinked right after it is created and read back through its
// open descriptor, so a client vanishing mid-DATA, a refused message or a
// crash leaves nothing behind and nothing is delivered. A connection keeps
// its spool file from one message to the next (spool.go): creating and
// freeing an inode per message was, measured with perf on ext4, the
// largest single CPU cost of a delivery (the inode allocator skips every
// recently freed inode, one look-up each).
//
// SMTP smuggling: go-smtp ends DATA only at <CRLF>.<CRLF> and starts a line
// only after CRLF, so <LF>.<LF> and <CR>.<CR> never end the data. We make
// one choice for bare CR and bare LF inside the message: the message is
// refused with 554 5.6.0 (RFC 5321 §2.3.8 requires CRLF). Normalizing would
// store, and later relay, a message whose lines differ from what the client
// sent, and it would turn a smuggling attempt's <LF>.<LF> into a real line
// with a dot; refusing keeps the store byte-exact (IMAP and POP3 sizes equal
// what was received). In DATA (not BDAT, whose chunks are counted) the
// refusal is sent as soon as the bare CR or LF is seen and the connection
// ends after it: such a client may also end its data with a bare line
// ending, which is no end for us, and waiting for one would hold both sides
// until the data timeout (Postfix's smtpd_forbid_bare_newline hangs up
// too). The clients we serve (Thunderbird, Outlook, Apple
// Mail, phones, swaks, Python's smtplib) all send CRLF. NUL octets are
// refused the same way. go-smtp's reader would drop a CR directly after a
// line's leading dot ("<CRLF>.<CR>x") together with the dot, hiding it; the
// edge turns such a dot into a CR before go-smtp reads it (a change of one
// byte in a message that is refused anyway), so the bare CR is refused like
// any other (TestSmuggling). go-smtp ends a BDAT chunk cut short by EOF as
// if it were whole; a message whose connection failed while it was read is
// never delivered.
//
// # Reply codes
//
// Replies go-smtp writes itself are translated by the edge where RFC 5321
// or RFC 4954 ask for others: commands out of sequence (RCPT before MAIL,
// also after RSET; DATA or BDAT before RCPT; MAIL before EHLO) are 503 5.5.1
// instead of 502; an AUTH response that is not base64 is 501 5.5.2 instead
// of 454 (RFC 4954 §4); AUTH without a mechanism 501 5.5.4; unknown MAIL
// and RCPT parameters 555 5.5.4 (RFC 5321 §4.2.3); a malformed AUTH=
// parameter 501 5.5.4; "too many errors" 421 4.7.0; a BDAT chunk that could
// not be read 451 4.4.2 (go-smtp would say 554 with the error's text), and
// the connection is closed.
//
// We add, in front of the message, one Received field with the TLS
// version and cipher and, on submission, the authenticated user; "for
// <rcpt>" only when there is one recipient. Return-Path (RFC 5321 §4.4) is
// the delivery pipeline's: it belongs to final delivery, and the queue's
// local transport needs it too. The header is parsed with a bounded reader
// (256 KiB) for the Message-ID that our log lines carry.
//
// On the MTA port, Authentication-Results fields in the message that
// claim our authserv-id (our hostname) are removed (RFC 8601 §5), the
// only change we make to the client's bytes. smtpd authenticates nothing
// itself: SPF, DKIM, DMARC and iprev, and the Authentication-Results field
// that reports them, are the inbound delivery filter's (package inbound),
// which sees the connection's facts through the delivery pipeline. The
// removal stays here because it must happen before anyone, filters
// included, reads the message.
//
// # Delivery and partial failure
//
// The local recipients go to the delivery pipeline as one message, with the
// connection's facts (address, EHLO name, TLS, user) for its filters. It
// resolves them again (RCPT resolved them only to refuse unknown users and
// full mailboxes early; the pipeline decides the accounts), gives every
// account one copy however many recipients lead to it, and returns once
// each copy is fsync'd and its index row committed, with one result per
// account. Foreign recipients become one durable queue entry, with any
// foreign alias targets the pipeline found that RCPT did not (an alias
// changed in between). The 250 comes only after all of that.
//
// SMTP has one reply for DATA, so per-recipient failures are accounted
// LMTP-style internally (one status per account and one for the queue
// entry) and resolved like this:
//   - all succeeded: 250;
//   - none succeeded: the translated error, a temporary one preferred, so
//     the client retries the whole message and nothing is duplicated;
//   - some succeeded: 250, and the failed accounts are handed to the queue
//     in one new entry, which retries them and eventually bounces them (the
//     queue owns retries and DSNs). If that enqueue fails too we reply
//     451 4.3.0 and the client's retry may duplicate the copies already
//     stored: a duplicate is preferred to a loss.
//
// A filter's reject is such a per-account failure: rejected for every
// account, the client gets the filter's reply (4xx or 5xx), and the
// foreign targets of aliases among the recipients are not queued either
// (a DMARC reject is the message's). A permanent reject for some accounts
// while others are delivered is not retried (the queue's attempt would not
// run the port-25 checks again): the 250 goes out and the queue sends the
// sender a DSN for those accounts at once (Queue.Bounce). A temporary
// reject is retried through the queue like any failure. A filter error or
// panic fails every account temporarily (451 4.3.0), nothing stored.
//
// Failures we can know before the data (unknown user, full mailbox) are
// refused at RCPT, so partial failure after DATA is rare.
//
// # Admission checks (Options.Gate)
//
// On ModeMTA only, and never for an authenticated session, Options.Gate
// (package gate: DNS lists, greylisting, sender rate; gate.go here) is
// told of each connection when it is accepted, so that its DNS lookups
// overlap EHLO and MAIL, and asked at MAIL (after our own checks of the
// sender) and at RCPT (after the recipient resolved and its quota was
// checked, so unknown users and relaying are refused first and never
// reach it). Its reply, 4xx or 5xx, is given as it is; any other error is
// logged and answered 451 4.3.0. Its refusals do not count as invalid
// recipients.
//
// # Errors and logging
//
// One function, toSMTPError, turns errors into bare *smtp.SMTPError values;
// anything it does not recognise is logged and answered 451 4.3.0, its text
// never sent. Log lines carry conn, proto=smtp, remote, user (after AUTH),
// id (conn id and message number, also in Received and in the 250 reply),
// msgid, rcpt, size. Protocol transcripts are not offered: go-smtp's Debug
// writer is shared by all connections and includes AUTH secrets, which we
// could not redact per connection; Debug-level log lines record MAIL and
// RCPT instead.
//
// # Shutdown
//
// Shutdown (package server's two phases) closes the listeners, ends idle
// connections (421 4.3.2) and lets messages being received or delivered
// finish. A message counts as such from the moment the client is told to
// send it (our edge sees the 354 go out, or a BDAT command come in) to its
// final reply, so a client that got 354 is never answered 421 in place of
// the message's reply; a DATA read just as Shutdown begins gets 421
// instead of 354. When its context ends Shutdown gives the rest an
// immediate deadline, cancels their store calls and waits for their
// goroutines and for every Data call, so the store can be closed after it
// returns.
package smtpd
