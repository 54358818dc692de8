// Package queue is Posthouse's durable outbound queue: it accepts messages
// for foreign recipients from smtpd (Enqueue), delivers them to the
// recipients' mail exchangers, retries, reports failures to the sender with
// delivery status notifications, and DKIM-signs mail from our domains. It
// owns the store, the schedule and every decision; the SMTP conversation is
// package smtpclient's, the DSN's shape package dsn's, keys and signatures
// package dkim's, and DNS answers come through the Resolver interface
// (package dns). It does not accept connections, and smtpd does not import
// it: cmd/posthouse hands it to smtpd as smtpd's small Queue interface.
//
// # On disk
//
//	<data_dir>/queue.sqlite   messages (with the body of those up to 64 KiB),
//	                          per-recipient state, DKIM keys
//	<data_dir>/queue/<id>     spool file: a larger message as accepted (CRLF)
//	<data_dir>/queue/tmp/     spool files being written
//
// The queue has its own SQLite database rather than tables in users.sqlite:
// its rows change on every delivery attempt while the user database changes
// rarely, its migrations evolve on their own schedule and belong to this
// package (the auth package owns users.sqlite's schema), and a busy queue
// never holds the write lock that logins and address resolution need.
// DKIM private keys live in the same database (PKCS #8 DER in dkim_keys),
// so queue.sqlite is created (and kept) mode 0600, and its -wal and -shm
// files inherit that mode; spool files are 0600 in 0700 directories.
//
// Enqueue is durable before it returns. A message of up to 64 KiB (most
// mail; counted as stored, CRLF) is kept in its row (messages.body): one
// commit (synchronous=FULL), one WAL fsync, and no spool file at all. This
// took the benchmark's relay from about 875 to 1,200-1,290 msg/s (medians
// of six alternating runs), the spool file's fsync, its directory's and the
// reaper's WAL fsync being gone. A larger message goes to tmp/ and is
// renamed into queue/, the file and the directory are fsync'd at once, and
// then the rows are committed: the row is what queues a message, so a
// crash before its commit leaves at most a spool file without a row,
// whatever the order the two fsyncs reached the disk in (overlapping them
// took the relay from about 795 to 875 msg/s when every message had a
// spool file). Concurrent Enqueues share the directory fsync
// (durable.DirSyncer: each waits for one that began after its rename) and
// the commit: those that wait for the write lock are committed together by
// the next of them, in one transaction and one WAL fsync, each with its own
// error (groupcommit.go). Start-up removes spool files without a row
// (their Enqueue never returned) and leftovers in tmp/.
//
// Two commits are not fsync'd. The first is the next attempt time saved before an
// attempt (synchronous=NORMAL for that transaction only; the connection
// is put back to FULL, or dropped). It exists so that a message that makes
// the process crash is not retried in a tight loop; a process crash
// (kill -9 included) keeps a NORMAL commit, since the write is already in
// the kernel. Power loss may undo it, and the recipients are then tried
// again at start-up as if that attempt had never begun, which no loop can
// come of; SQLite's WAL recovers a prefix of the commits, so a later
// FULL commit that survived implies this one did.
//
// The second records what a server answered (reap.go): the recipients'
// states and, when all are done, the message's removal. A process crash
// keeps it. Power loss may undo it: the message is then pending again
// and goes out a second time, a duplicate and never a loss (RFC 5321
// §6.1 prefers a duplicate to a lost message; MTAs that unlink a
// delivered queue file without syncing its directory behave alike). Its
// spool file is removed only after the WAL was fsync'd behind it (within
// 50 ms, one fsync for every file that waited), so an undone finish
// always finds its body and is never bounced as "message file missing"
// (a body kept in the row comes back with the row). The file is not unlinked but moved to tmp/ and emptied, and the next
// Enqueue writes into it (at most 256 wait): on ext4, creating a file
// among many recently deleted ones searched the inode bitmap past them,
// the largest part of an Enqueue's CPU in a relay's profile. For a crash
// the move is a removal (tmp/ is emptied at start-up; a move undone by
// power loss leaves a file without a row, which start-up removes).
// This saves one of the four fsyncs per relayed message, and a commit's
// fsync held under the queue's single write lock, which Enqueue waits
// for. Failures that will produce a DSN are also recorded this way; the
// DSN's own Enqueue is fsync'd and makes the record durable with it.
//
// # On PostgreSQL
//
// With Options.Postgres (cmd/posthouse sets it when [store] backend is
// "postgres") the messages live in that database instead (queue_messages,
// queue_recipients, queue_bodies in 256 KiB chunks, queue_claims;
// component "queue" of internal/pgdb's migrations), behind the same
// storage interface as queue.sqlite and the spool (storage.go), and every
// node using the database delivers from one queue. Enqueue is one
// transaction committed before it returns; the body streams into chunks,
// so neither Enqueue nor delivery holds more than one chunk. DKIM keys
// are in that database too (dkim.OpenPostgresKeys), so every node signs
// with the keys admin made on any.
//
// Each job (a message's due recipients at one domain) is claimed by one
// node: one statement reads due recipients FOR UPDATE SKIP LOCKED and
// inserts their jobs into queue_claims (primary key message and domain,
// the node's id, a lease on the database's clock, default 60 s). The node
// renews all its leases every third of a lease and releases a job after
// recording its results; a remote's answer is recorded whoever holds the
// claim. A node that has not renewed for half a lease starts no further
// transaction (its claims may be taken). A claim whose lease ran out
// belongs to a node that died: the next node to scan takes it over and
// makes its recipients due at once, so they are retried a lease later
// rather than after the backoff. A node killed after the remote accepted
// a message and before it recorded that (milliseconds) causes one
// duplicate, as a crash does on one node (RFC 5321 §6.1); no claim is
// lost while its node lives, so two live nodes never send one job. DSNs
// and delay warnings are sent under a per-message report claim (domain
// ""), re-read after claiming, so one node sends each.
//
// # Delivery
//
// Recipients are grouped by destination domain; one attempt handles the due
// recipients of one message at one domain. Recipients in our own domains
// (smtpd queues them when a local copy failed, e.g. a full mailbox or a
// filter's reject) take the local transport: the local delivery pipeline
// (Options.Local, a *delivery.Pipeline) resolves them, runs its filters (again: their
// verdicts are not stored with the entry, and the queued message carries
// none of the fields they add) and stores the copy with its Return-Path.
// A full mailbox is retried like a 452, an unknown user fails with 5.1.1,
// a filter's reply is the recipient's status (4xx retried, 5xx bounced
// with it), a filter error is retried (4.3.0); an alias with several
// targets queues the ones not delivered as a new message, so no retry
// repeats a copy; each recipient is one pipeline call.
//
// # Concurrency and stalling servers
//
// At most MaxConcurrent attempts run in total (default 50), MaxPerDomain
// per destination domain (5) and MaxPerHost connections per mail server
// address (10; many domains may share one MX), so a server that stalls
// holds a few slots and mail to other destinations keeps flowing. Every
// step of a conversation has its RFC 5321 §4.5.3.2 deadline (Timeouts,
// package smtpclient: a deadline for a whole reply, however slowly its bytes
// come, and one for the whole connection), and a deadline that passes is
// recorded as the deferral's reason, e.g. "451 4.4.2 timeout waiting for
// greeting from mx.example [192.0.2.1]", which admin queue show prints. A
// server whose last connection timed out, sent an unreadable reply or
// could not be reached gets one connection at a time until a transaction
// with it completes. An attempt that finds a healthy server at its limit
// waits for one of its connections to end (up to 30 s), or for one of them
// to take its message, so many domains hosted on one server share its
// slots. An attempt that finds a
// failed server busy, or a healthy one full for 30 s, connects nowhere,
// records why, and is made again after a minute (a failed server; at once
// when the server completes a transaction again) or 5 seconds (a healthy
// one) without counting as an attempt. MX hosts are tried lowest
// preference first (equal preferences shuffled); a domain without MX is its
// own mail host (RFC 5321 §5.1); a null MX (RFC 7505) fails at once with
// 5.1.10. When our own hostname is among the MX hosts, only those preferred
// over it are tried, and none means a routing loop (temporary, 4.4.6, so
// the DNS can be fixed). Each host's addresses (AAAA, then A) are tried in turn, at most
// ten connections per attempt, until one server gives per-recipient
// answers. A connection that delivered its message goes on with other due
// messages for the same domain (up to 100, each a complete attempt with
// its own bookkeeping), so a backlog for one destination drains without a
// connection and TLS handshake per message. When none is due it stays open
// for up to a second (while slots are free, or attempts wait for its
// server) for the next message enqueued to that domain, which the
// scheduler then leaves to it: mail to one destination comes in runs.
// Postfix keeps such connections up to 2 s. An attempt to another domain
// whose MX host resolved to the same address hands its message to such a
// waiting connection (after its own DNS look-ups, as always) instead of
// opening one: domains hosted on one server (a provider's MX) share
// connections, as Postfix's connection cache by server address does. The
// attempt keeps its own domain's slot until the connection returns its
// results, and concludes them as its own.
//
// The SMTP conversation is package smtpclient's: EHLO with
// Options.Hostname, STARTTLS when offered, SIZE, BODY=8BITMIME and
// SMTPUTF8 when the message needs them, MAIL and all RCPTs pipelined. A
// message larger than the server's SIZE, one with 8-bit content to a server
// without 8BITMIME (we do not downgrade: that would break the DKIM
// signature), and one with non-ASCII addresses to a server without SMTPUTF8
// fail permanently. Raw UTF-8 in header fields only needs 8BITMIME.
//
// Opportunistic TLS (RFC 7435): certificates are not verified, since
// without MTA-STS or DANE there is nothing to verify them against; TLS
// still defeats passive eavesdropping. When a server advertises STARTTLS
// and the command or the handshake fails, that connection is dropped (we
// never continue in plaintext on it) and the host counts as a temporary
// failure for this attempt; the next MX host is tried with TLS. The retry
// decision: at a later attempt (at least a minute later, i.e. after the
// backoff) within 24 hours of the failure, we talk to that host without
// STARTTLS, so a server with a broken TLS setup still gets its mail, with
// a warning in the log; a restart forgets the failures and tries TLS first.
//
// Every delivered (2xx) or refused (5xx) recipient is written to the
// database right after the server's reply to the end of data, before QUIT,
// so nothing acknowledged is ever sent again after a crash or restart.
//
// # Retries and reports
//
// Connection failures, DNS failures and 4xx replies are temporary. The
// next attempt time is saved before each attempt (a crash mid-attempt
// waits for it rather than looping): 5 m, 10 m, 20 m, … doubling, capped at
// 4 h, with ±10 % jitter. A recipient still failing temporarily once the
// message is older than Options.Expiry (default 5 days) fails with status
// 4.4.7. 5xx replies, local permanent failures and expiry produce one DSN
// (built by package dsn: an RFC 3464 multipart/report with a text part,
// message/delivery-status, and the original header as
// text/rfc822-headers; RFC 6533 global types when an address is not
// ASCII) to the envelope sender: through the local delivery pipeline
// when the sender is local (Options.Locals, Options.Local; stored with
// Return-Path: <>, and dropped with a log line when the sender does not
// exist, the mailbox is full or a filter refuses it), else queued with the
// null sender. A message with the null sender (a DSN itself) is
// never bounced (RFC 5321 §4.5.5). A "delayed" DSN is sent once when a
// message still has pending recipients after Options.DelayWarning
// (default 4 h). A recipient's failure is marked reported only after its
// DSN is delivered or queued, so a crash may repeat a DSN but never loses
// one. Messages with nothing left to do leave the queue.
//
// Shutdown interrupts attempts in flight; their recipients keep the next
// attempt time they had, so they are tried first after the next start.
//
// # SRS
//
// With Options.SRS (package srs) and Options.Locals, a remote attempt
// whose stored sender is not in one of our domains gives MAIL FROM in its
// SRS form (SRS0=HHHHHH=TT=orig.domain=local@our.srs.domain): such mail is
// forwarded (an alias's foreign targets, whether smtpd queued them or our
// local transport requeued them; a filter's redirect) or sent under a
// foreign send-as grant, and the receiver's SPF check of the original
// domain would fail against our address. The null sender and local senders
// are left alone. The stored sender is not changed: each attempt gets a
// fresh timestamp, and a DSN we make ourselves goes to the original sender
// directly; a DSN the receiver makes later goes to the SRS address, which
// smtpd reverses. A sender SRS cannot rewrite (a local part that would
// pass 64 octets) goes out unchanged, with a warning.
//
// # DKIM
//
// A message is signed at Enqueue, once, by package dkim with every key of
// its signing domain (see that package for keys and signature options).
// The DKIM-Signature fields are stored with the row and written before the
// spool file at delivery, so the spool file is the message as accepted. The
// keys live in queue.sqlite (the table is created by this package's
// migrations); DKIM returns the store for admin commands.
package queue
