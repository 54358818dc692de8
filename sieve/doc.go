// Package sieve is Posthouse's Sieve language (RFC 5228): the parser,
// the checker that compiles a script, and the interpreter that runs it
// over one message and says what to do with it.
//
// It owns: the language and its extensions, their limits, and the Result
// of a run. It does not: carry out actions (storing, the redirect through
// the queue, sending a vacation response, refusing at SMTP time: the
// delivery filter that wires this package does), keep state (duplicate
// tracking, vacation response tracking, stored scripts: the caller keeps
// them behind Env's small interfaces), or speak ManageSieve.
//
// # Use
//
//	s, err := sieve.Compile(src, sieve.Options{}) // a *sieve.Error names line and column
//	res, err := s.Run(ctx, sieve.Env{Header: ..., Content: ..., Envelope: ..., Now: ...})
//
// A Script is immutable; cache it per script text and run it
// concurrently. Env gives the header (HeaderFields adapts delivery's
// parsed header), the whole message for body and size tests, the
// envelope, the clock and local zone, the spam verdict (from the junk
// filter's X-Posthouse-Junk field: the topmost one), and interfaces for
// duplicate tracking, included scripts and mailbox existence.
//
// Result lists keep, fileinto (mailbox, :copy, :create, flags),
// redirect (bare address, :copy), reject/ereject (reason) and discard in
// script order, deduplicated (one copy per mailbox, flags united; one
// redirect per address, local part compared exactly); ImplicitKeep and
// its flags; the vacation response to consider (RFC 5230: handle,
// period, subject, from, and Skip when RFC 5230 §4.5/§4.6 forbid a reply;
// the caller checks whether it already answered this sender within
// Period); header edits (fields on top, at the bottom, and the message's
// own fields to delete, by name and occurrence); duplicate ids to record
// once the actions were carried out (RFC 7352 §3).
//
// A run that fails (a runtime error: a limit, conflicting actions, a bad
// address or mailbox built from variables, an include that is missing or
// recursive, an error of Env's interfaces, ctx done) returns the error
// and FailedResult: keep the message in INBOX and do nothing else (RFC
// 5228 §2.10.6). The caller logs the error for the user's postmaster.
//
// # Extensions
//
// fileinto, reject, ereject (RFC 5429), envelope (parts from, to, and
// auth), encoded-character, imap4flags (RFC 5232), copy (RFC 3894), body
// (RFC 5173), variables (RFC 5229), vacation (RFC 5230),
// vacation-seconds (RFC 6131), relational (RFC 5231), subaddress (RFC
// 5233, separator "+", as auth resolves user+tag), date and index (RFC
// 5260), mailbox (RFC 5490), include (RFC 6609), duplicate (RFC 7352),
// editheader (RFC 5293), spamtest and spamtestplus (RFC 5235), regex
// (draft-ietf-sieve-regex, as draft-murchison-sieve-regex-07), comparators i;octet, i;ascii-casemap
// and i;ascii-numeric. Requiring anything else, or using an extension
// not required, is a compile error. Extensions lists them (for
// ManageSieve's SIEVE capability); Options.Disabled turns some off.
//
// # Limits
//
// Each has a default in Options. At compile time: script size (256 KiB),
// nesting of blocks and tests (32), numbers (63 bits), a :regex key
// (1 KiB, at most 5,000 instructions compiled; RE2 matching is linear in
// the input), match variables ${0} to ${9} (RFC 5229 §6: a higher index
// is a compile error). At run time: actions (32), redirects (4), include
// depth (5; recursion is an error, :once skips it), variables per
// script (256) and their length (4,096 bytes: longer values are
// truncated, RFC 5229 §6), body tests read the first 1 MiB of the
// message (the MIME structure is mimeparse's, itself bounded), and a
// work budget of 1,000,000 steps per run: every command and test is a
// step, every value compared costs one plus one per 256 bytes per key,
// every wildcard backtrack one. The budget is deterministic (the same
// run always spends the same; no wall clock); exceeding it is ErrSteps.
//
// # Deliberate differences
//
// TestDovecotSieveTest runs the conformance table (every extension,
// the examples of RFC 5228, 5229, 5230, 5235, 5260, 5293, 7352) through
// Dovecot Pigeonhole's sieve-test (Debian's dovecot-sieve 2.3.19) when it
// is installed; 105 cases agree. The differences, on purpose:
//   - Match variables stop at ${9}; ${10} is a compile error (Dovecot
//     accepts higher indexes).
//   - A :zone that is not +hhmm/-hhmm is a compile error when constant
//     (RFC 5260 §4.1 allows nothing else); Dovecot finds out at run time.
//   - Vacation's checks (list mail, Auto-Submitted, Precedence bulk,
//     automated senders, not addressed to the user) are made in the run
//     and reported as Vacation.Skip; sieve-test lists the action and makes
//     them only when it sends. Precedence and "noreply", "-bounces" and
//     "-owner" senders are skipped besides RFC 5230's list.
//   - The vacation period is bounded by 1 day and 90 days by default,
//     :seconds included (RFC 6131 lets a site choose its minimum).
//   - reject and ereject cannot be combined with keep, fileinto or
//     redirect (RFC 5429 §2.4: NOT RECOMMENDED), nor with vacation (MUST):
//     the run fails and the message is kept.
//   - Header edits apply to every copy (stored and redirected) as the
//     script left the header at its end, not as it was when each action
//     ran. Received and Auto-Submitted can be neither added nor deleted
//     (RFC 5293 §6), silently.
//   - :regex uses Go's RE2 syntax (a superset of POSIX ERE without
//     back-references) with leftmost-longest matching; i;ascii-casemap
//     makes it case-insensitive.
//   - body :text tests the text/* parts (HTML with its tags stripped) of
//     the first 1 MiB; :content descends into multiparts and message/rfc822
//     but never tests a multipart's preamble or epilogue.
//   - include resolves scripts at run time through Env.Scripts (RFC 6609
//     allows both), so a script can be uploaded before the ones it
//     includes.
//   - The address test accepts the fields that hold addresses (From,
//     To, Cc, Bcc, Sender, Reply-To, the Resent- ones, Return-Path,
//     Delivered-To and a few more); others are a compile error when the
//     name is constant.
//
// # Cost
//
// go test -run '^$' -bench . -benchmem ./sieve on the shared 2-core
// development machine under a load average of 14-16 (cpu-ns/op is the
// process's CPU time from getrusage; wall time mostly measures the load):
//
//	Run: a 20-rule script (header, address and envelope tests,
//	fileinto, flags, a vacation) over a 10 KB message,
//	header read (ReadHeader) included         0.08-0.09 ms CPU, 395 allocs, 41 KB
//	Compile the same script                    0.15 ms CPU, 1,081 allocs, 56 KB
//
// Each field is unfolded, decoded and parsed as addresses at most once
// per run; the body is parsed only by body tests, once per transform.
package sieve
