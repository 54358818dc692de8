// Package imapd is Posthouse's IMAP server (RFC 9051 IMAP4rev2 and RFC 3501
// IMAP4rev1) on top of go-imap v2's imapserver, over mailstore and auth.
//
// # What it owns
//
// The imapserver options (capabilities, TLS, insecure-auth policy), one
// Session per connection over the logged-in account's mailstore handle, the
// shared per-mailbox state (ordered UID list and imapserver.MailboxTracker)
// fed by mailstore change events, and the translation of mailstore errors
// into IMAP response codes (mapError, in errors.go). It never touches
// Maildir files: every message operation goes through mailstore.Account.
// Accepting, connection ids,
// limits and the two-phase shutdown are package server's: its accept loop
// hands each connection, through a server.Handoff, to one of two library
// servers (one allows authentication without TLS, for implicit TLS and,
// with LoopbackIsSecure, loopback), and its first shutdown phase sends
// each session BYE once the response being written is out. The library
// has Close but no graceful shutdown, so this is how we get one.
//
// # Isolation
//
// A Session holds exactly one mailstore.Account, opened with the address auth
// returned at login. Mailbox names are resolved by that account alone, so no
// name (other namespaces, "..", "~", absolute paths) can reach another
// account's mail: there is simply no handle on it in the session.
//
// # Shared mailbox state and unilateral updates
//
// The first SELECT of a mailbox in the process creates a mailboxState: it
// opens its own account handle, calls Account.Watch, then Account.Snapshot,
// and from then on applies the account's events for that mailbox (those
// whose ModSeq is greater than the snapshot's HighestModSeq) in commit order
// under one lock. Every EXISTS, EXPUNGE and FETCH FLAGS a client sees is queued
// on the mailbox's imapserver.MailboxTracker by that event handler and written
// by the session's SessionTracker in Poll (after each command) or Idle. Each
// EXPUNGE therefore has exactly one path to the wire: Expunge and Move write
// none themselves. For STORE, the session registers the UIDs it is changing
// so the resulting flag events skip its own tracker (RFC 9051 §6.4.6: the
// STORE response carries the new flags, .SILENT suppresses them). A
// command that showed messages (FETCH, STORE, QRESYNC's SELECT) then
// revises its session's queue (modseqorder.go): older changes queued for
// those messages are dropped, or folded into the state shown when only
// the modseq was, so no FETCH takes a client back to older flags or a
// lower MODSEQ; a FETCH showing a keyword first writes the FLAGS update
// announcing it, if one is queued. FLAGS never loses a keyword while
// the process runs: a mailbox's state loaded again starts with the
// keywords its earlier one announced. The state
// of a small mailbox is dropped when the last session leaves it; that of a
// large one (1,000 messages or more) lingers 5 minutes, still fed by
// events, so that the next SELECT (a client that reconnects, or selects
// INBOX for every check) joins it instead of reading the mailbox's list
// from the store: SELECT of 100,000 messages went from 3 ms (list cached
// in the store) or 30 ms (read from the index) to well under 1 ms of
// server time. Before reuse the mailbox's HIGHESTMODSEQ and UIDVALIDITY are
// read back from the store: a change made by another process, which sends
// this one no event, makes the state stale and it is loaded afresh. At
// most 16 states linger; Shutdown drops them. A SELECT joining a state
// that other sessions have selected reads them back too, and waits (up to
// 250 ms) until the state has applied every change up to that
// HIGHESTMODSEQ: a change committed on another node sharing a PostgreSQL
// store reaches this process as a notification a little later, and one
// made by another process on the embedded store not at all. A state that
// does not catch up is left to the sessions that have it (they close it
// when they leave) and the SELECT loads a fresh one, which the next
// SELECTs join.
//
// # \Recent (IMAP4rev1)
//
// RFC 3501 §2.3.2: a message is recent in exactly one session. The store
// keeps each mailbox's claim point (mailstore.Account.ClaimRecent), so a
// claim holds across sessions, processes and restarts; a session keeps the
// UIDs it claimed as a UID set of ranges (recent.go). A read-write SELECT
// claims every unclaimed message; while selected, a session claims new
// messages in its poll before writing the updates (so a FETCH FLAGS among
// them shows \Recent) and follows the EXISTS of new messages with RECENT.
// EXAMINE shows the messages unclaimed when it looks and claims none;
// STATUS RECENT counts the unclaimed. FETCH, STORE and the unilateral FETCH
// FLAGS this session writes (through SessionTracker.SetMessageFlagsFunc, a
// patch) add \Recent; SEARCH RECENT, NEW and OLD become UID sets before the
// store sees them; \Recent is never stored. For new messages to be claimed
// in IDLE too, Idle polls on the mailbox state's change signal instead of
// handing over to SessionTracker.Idle. After ENABLE IMAP4rev2 a session
// neither claims nor shows \Recent (RFC 9051 has none).
//
// # Live SEARCH and SORT results (CONTEXT=SEARCH, CONTEXT=SORT) and PARTIAL
//
// SEARCH RETURN (PARTIAL m:n) (RFC 9394) cuts the ascending result to
// positions m..n, counted from the end when negative. RETURN (UPDATE)
// (RFC 5267 §4.3) keeps the result live: its criteria are made static
// (UIDs only) and the mailbox state collects the UIDs of new and changed
// messages for each selection with live results; the session's poll
// re-evaluates only those (one store search per result, restricted to
// them) and writes ESEARCH ADDTO/REMOVEFROM after the poll's EXISTS and
// FETCH, with position 0 (an unsorted result has none). A message of a
// result that is expunged leaves it by a REMOVEFROM written just before
// its EXPUNGE (a tracker patch, SetExpungeFunc), while its sequence
// number still names it. A session keeps at most five live results,
// SEARCH and SORT together; a sixth is answered once and followed by
// "* NO [NOUPDATE tag]" (§4.3.1). UPDATE with the tag of a live result is
// BAD (§4.3). CANCELUPDATE ends them, as does leaving the mailbox.
//
// SORT RETURN (UPDATE) (CONTEXT=SORT, RFC 5267 §4) is the same machinery
// (sortctx.go) with an order: the result keeps each message's sort key,
// encoded by mailsort.Encode into one string whose byte order is the sort
// order (only the keys the criteria use, then the UID), in a list split
// into blocks. Sort keys never change, so only messages entering or
// leaving move: the keys of those entering come from the index, their
// positions from binary search, and ADDTO/REMOVEFROM carry 1-based
// positions in the result as the client holds it, a run of adjacent
// messages in one. A result whose keys exceed 8 MiB when made (about
// 100,000 messages by subject) gets NOUPDATE. MIN, MAX, COUNT and PARTIAL
// with UPDATE are answered once; the updates cover the whole result
// (§4.3: UPDATE does not interact with other return options).
//
// # APPEND of binary content
//
// A literal8 APPEND (RFC 3516 §4.4) may carry parts with
// Content-Transfer-Encoding: binary, NUL bytes and all, which no plain
// literal may hold, so BODY[n] of such a part could never be sent.
// Posthouse stores such parts base64-encoded (their header says so), as
// Dovecot does; BINARY[n] and BINARY.SIZE[n] decode them back to the bytes
// sent. The spooled literal (see below) is streamed through the
// conversion to the store (binary.go); only literal8 messages (and
// CATENATE messages with a literal8 TEXT part) take this path.
//
// # A full disk
//
// Below the disk reserve (Options.Space, package diskspace) APPEND is
// refused with NO [OVERQUOTA] before any literal is read, its text saying
// that deleting still works; nothing else is refused, so a user can
// expunge and move to make room. COPY is allowed: the store hard-links.
// A write that finds no space (ENOSPC, SQLITE_FULL) gets the same reply.
//
// # MULTIAPPEND and CATENATE
//
// The library hands the session each message of an APPEND in turn (a
// patch, SessionAppendMessages); every APPEND, single or MULTIAPPEND
// (RFC 3502), is spooled (in memory up to 128 KiB, then to one unlinked
// temporary file per command) and
// stored only once the library has read the command's end (append.go).
// A dropped connection, bad syntax, a message over MaxAppendSize, more
// than 1,000 messages or a bad URL therefore store nothing. Before
// storing, the whole command is checked against the quota; a store call
// that still fails part way has the messages already stored flagged
// \Deleted and expunged by UID (other sessions see them come and go:
// mailstore has no multi-message transaction, and adding one for this
// rare case was not worth widening its interface). APPENDUID carries the
// UID set (RFC 4315). CATENATE (RFC 4469) parts are TEXT literals and IMAP
// URLs (RFC 5092, parsed in imapurl.go, bounded and fuzzed) naming a
// message or section of this user's own mailboxes: relative ("/mailbox
// ;UIDVALIDITY=n/;UID=n/;SECTION=x/;PARTIAL=o.l", or ";UID=n…" in the
// selected mailbox) or imap:// naming Options.Hostname and the logged-in
// user; anything else, a wrong UIDVALIDITY, or a missing message or
// section is NO [BADURL url]. Sections are located by mimeparse exactly
// as for FETCH BODY[section]<partial> and streamed into the spool. A
// message has at most 1,000 parts, a command 10,000 URLs; a message built
// over MaxAppendSize is NO [TOOBIG]. After a failure the library reads
// the rest of the command, keeping nothing, and refuses the next
// synchronizing literal rather than asking for it.
//
// Sequence numbers from the client are decoded with the session's tracker
// (SessionTracker.DecodeSeqNum) into the server view and then into UIDs
// before any store call, including sequence sets nested in SEARCH criteria;
// responses are encoded back with EncodeSeqNum. FETCH gathers index rows and
// message bytes first and writes responses with no lock held, so a slow
// client never blocks delivery. ENVELOPE and BODYSTRUCTURE come from the
// index; body sections, BINARY and BINARY.SIZE are located in the message
// file by mailstore/mimeparse (bounded, whatever the message) and streamed
// from it, never loaded whole.
//
// # SORT and THREAD
//
// SORT (RFC 5256), SORT=DISPLAY (RFC 5957), ESORT (RFC 5267 §3) and
// THREAD=REFERENCES and THREAD=ORDEREDSUBJECT are parsed by the patched
// library (SessionSort, SessionThread) and answered in sort.go over the
// pure algorithms of imapd/mailsort. The search runs in the store; the
// keys come from the index 1,000 rows at a time (cached envelope:
// subject, addresses, Date), so only one small key per matching message
// is held. Ties go by sequence number, ascending under REVERSE too, as
// Dovecot orders them. THREAD=REFERENCES also needs References, which the
// index does not keep: each matching message's header is read from its
// file, bounded, keeping only Message-ID, In-Reply-To and References; on
// 100,000 messages that takes seconds (a store lookup per message), where
// a References column in the index would take one query. RETURN (PARTIAL
// m:n) is answered (RFC 9394), and RETURN (UPDATE) as above. SEARCH, SORT
// and THREAD share one search-to-sequence-number step (matching).
//
// # Where go-imap v2.0.0-beta.8 falls short, and what we do
//
//   - EXAMINE is not enforced by the library: Store, Expunge and Move refuse
//     writes on a read-only selection themselves, FETCH of a body does not set
//     \Seen there, and CLOSE does not expunge.
//   - Malformed or empty command lines closed the connection, ID was unknown
//     (and before login an unknown command ends the connection, which broke
//     clients that send ID first, such as Apple Mail and Thunderbird), and
//     CLOSE on an EXAMINEd mailbox expunged: Posthouse builds against a patched
//     copy under third_party/go-imap (see its README).
//   - Client mistakes the library answered with NO [SERVERBUG] and an
//     error log line (invalid modified UTF-7 in LIST patterns, SEARCH nested
//     without bound, over-long lines, bad AUTHENTICATE base64, APPEND with
//     junk after the literal, which also hung) are BAD in the patched copy;
//     sequence numbers beyond the client's last EXISTS are BAD for FETCH,
//     STORE, COPY and MOVE (RFC 9051 §9, as Dovecot answers), using the
//     tracker's count of what the client was told. SEARCH keys and UID sets
//     naming no message match nothing.
//   - CONDSTORE/QRESYNC: the library's server side had no MODSEQ fetch item,
//     no CHANGEDSINCE/VANISHED/UNCHANGEDSINCE/SEARCH MODSEQ/SELECT parameter
//     parsing, no VANISHED and no MODSEQ in unilateral FETCH; patches add
//     them (see below), and Posthouse answers from the store.
//   - QUOTA had no server side in the library: a patch parses GETQUOTA,
//     GETQUOTAROOT and SETQUOTA and calls SessionQuota (quota.go says what
//     we answer); another lists capabilities the library does not know
//     (QUOTA, …) after login.
//   - OBJECTID had no support: a patch carries MAILBOXID (SELECT, STATUS,
//     CREATE's OK), EMAILID and THREADID (FETCH, SEARCH); objectid.go says
//     what the IDs are.
//   - NOTIFY had no support: a patch parses NOTIFY SET/NONE for
//     SessionNotify and lets Poll and Idle write STATUS; notify.go says
//     which events we send and how what is pending stays bounded.
//   - COMPRESS=DEFLATE had no library support: a patch switches the
//     connection to raw deflate after COMPRESS DEFLATE. Every write that
//     leaves the library's buffer (each response batch) is compressed into
//     its own sync-flushed segment, so no update waits in a compressor
//     (TestCompress proves it for a large FETCH, IDLE updates and commands
//     in 2-byte writes). compress/flate's reader held back a block ended by
//     zlib's Z_PARTIAL_FLUSH (mbsync's flush) until more data came, so the
//     patch decompresses with a copy that hands out each block at its end.
//     The ~1 MB flate.Writer is borrowed from a pool per
//     write, so an idle compressed connection keeps only its decompressor:
//     its 40 KB and a 4 KiB buffer, 45-60 KB more than the ~20 KB of an
//     idle connection (TestCompressMemory).
//
// # CONDSTORE and QRESYNC (RFC 7162)
//
// Every mailbox has modseqs (the store gives each change its own), so
// NOMODSEQ is never sent and HIGHESTMODSEQ is always in SELECT. The
// patched library parses the commands, tracks which connection enabled
// what (ENABLE, or any CONDSTORE-enabling command, whose first use in the
// selected state sends OK [HIGHESTMODSEQ] through SessionCondStore) and
// writes the responses; condstore.go answers. Once CONDSTORE is on, a
// FETCH that shows FLAGS also shows MODSEQ (as Dovecot does), STORE's
// FETCH responses carry MODSEQ (with .SILENT, MODSEQ alone for the
// messages that changed), and unilateral FETCH FLAGS carry the event's
// modseq (MailboxTracker.QueueMessageFlagsModSeq). STORE (UNCHANGEDSINCE)
// is the store's own conditional update, in one transaction; UNCHANGEDSINCE
// 0 fails for every message without a store call; the tagged reply is OK
// [MODIFIED set]. SEARCH MODSEQ is matched by the store against each
// message's one modseq (the entry name and type are accepted and
// ignored: flags have no modseqs of their own); (MODSEQ n) is the highest
// of the messages returned, which for ESEARCH MIN/MAX are those alone.
//
// After ENABLE QRESYNC, expunges go out as VANISHED (the tracker queues
// each with its UID; a run of them is one response), after commands and
// in IDLE, and every FETCH carries the UID. SELECT/EXAMINE (QRESYNC
// (uidvalidity modseq [known-uids])) answers, when the UIDVALIDITY
// matches, VANISHED (EARLIER) from Account.Expunged (cut to the known
// UIDs) and FETCH (UID FLAGS MODSEQ) from Fetch with ChangedSince; both
// are served by indexes (mailstore/maildir keeps expunged UID ranges with
// their modseq and an index on modseq), so a resync costs what changed,
// not the mailbox's size (BenchmarkSelectQResync100k). The store keeps
// every expunge, so seq-match-data (for servers that forget) is parsed
// and not needed. UID FETCH (CHANGEDSINCE n VANISHED) does the same for a
// UID set. The CLOSED code on switching mailboxes was already sent.
//
// # Client address behind a webmail
//
// Logins are checked by auth with the client's address, which throttles
// password guessing per address. A webmail or proxy connects from its own
// address for all its users, so it may name the user's address in the RFC
// 2971 ID field "x-originating-ip". That address replaces the connection's
// for auth and in the logs (as remote, with the connection's as proxy) only
// when the connection comes from Options.TrustedNetworks and the session is
// not authenticated; otherwise the field is ignored with a Warn line, since
// anyone else could name an address to dodge the lockout or to pin it on
// someone else.
//
// # Timeouts and limits
//
// The library reads a command line within 30 s; it waits at most
// Options.IdleTimeout (default 35 minutes; RFC 9051 §5.4 asks for at least
// 30) for the next command once authenticated, IDLE included, and
// Options.LoginTimeout (default 30 s) before login, then says "* BYE
// Autologout". Literals are read within 5 minutes. Literals of
// commands other than APPEND are capped at 4 KiB by the library; APPEND
// literals larger than Options.MaxAppendSize are refused with NO [TOOBIG]
// before the client sends them, as are those that would take one APPEND
// command's spool over 1 GiB (or MaxAppendSize if larger). Connections over a limit of Options.Conns
// (per address, total; cmd sets no rate for IMAP) get "* BYE [UNAVAILABLE]"
// in plain text, on imaps too, and are closed before a session exists.
// IMAP connections are never evicted to make room for others.
package imapd
