// Package server is the connection lifecycle every Posthouse listener
// shares (smtpd, imapd and pop3d today): one accept loop with backoff, the
// registry of live connections, process-wide connection ids, connection
// limits, and two-phase shutdown. A protocol supplies three things:
// Options.Handle, which serves one connection; Options.Refuse, which
// writes its "too busy" line; and, per connection, Conn.OnStop, which asks
// its session to finish at a safe point. It imports nothing of ours but
// auth/limit, and knows no protocol.
//
// # One accept loop
//
// Lifecycle.Serve owns the accept loop for every listener. A temporary
// accept error (EMFILE, ENFILE, ENOBUFS, ENOMEM, ECONNABORTED, a timeout)
// keeps the listener: the loop waits 5 ms, doubling to at most 1 s, and a
// successful accept resets the delay; any other error ends Serve.
// Before each accept the loop also waits while the process's live
// connections (all Lifecycles together) are at the soft RLIMIT_NOFILE less
// a reserve of a quarter (64 to 1024 descriptors), so the sessions in
// progress keep descriptors for their spool files, DNS queries and
// Maildir writes; new connections wait in the kernel's accept queue
// meanwhile (fds.go). go-smtp's
// and imapserver's Serve run accept loops of their own, so smtpd and imapd
// hand them our accepted connections through a Handoff, a net.Listener
// backed by a channel, whose Accept only ever fails with net.ErrClosed. We
// own the loop rather than wrapping the library's listener because that
// gives one implementation: pop3d has no library loop at all, and with a
// wrapper the limits, ids and registry would sit in a listener decorator
// while the backoff and the goroutine per connection stayed in three
// places. The price is one parked goroutine per SMTP and IMAP connection
// (Handle waits for the library to finish with it).
//
// # Registry and ids
//
// Each accepted connection is a *Conn, registered until its Handle
// returns, and closed then if Handle has not. Its ID is the "conn" of every
// log line about it (with "proto" and "remote"). Ids come from one counter
// for the whole process, so imap and imaps, or 25 and 587, never share one:
// the milliseconds since 2025-01-01, or one more than the last id when
// connections come faster, written as 8 base-32 digits (0-9, a-z without
// i, l, o, u) that sort as ASCII in the order they were issued. A restart
// repeats no id unless the process before ran ahead of the clock by more
// than the restart took.
//
// # Limits
//
// Options.Conns (an auth/limit Conns; nil limits nothing) is asked for a
// slot for every new connection before any TLS handshake or protocol
// work: per client address (an IPv4 address or an IPv6 /64), in total, and
// in rate, with fair-share eviction when full (see auth/limit). A refused
// connection goes to Options.Refuse in its own goroutine under a 5 s
// deadline, at most 64 at a time (beyond that it is closed without a word),
// and never reaches Handle. Each protocol answers in its own words: SMTP
// "421 4.7.0" (nothing on implicit TLS), IMAP "* BYE [UNAVAILABLE]", POP3
// "-ERR [SYS/TEMP]" (after a TLS handshake on implicit TLS). Eviction needs
// the protocol to say when a connection is idle: it calls Slot.Touch per
// command and Slot.SetBusy around a message upload, and opts in with
// Slot.SetEvict (smtpd does; imapd and pop3d do not, so their connections
// are never evicted).
//
// Counting stays in auth/limit, beside this package, rather than moving in:
// it is pure bookkeeping over addresses with no sockets, and auth's
// password throttle groups clients by the same limit.Key, so moving it here
// would make auth import the connection lifecycle or copy the rule.
// What was limit.Listener, a second way to apply the limits, is this
// package's accept loop now.
//
// # Shutdown
//
// Lifecycle.Shutdown (STYLE §6). Phase 1: close the listeners, cut
// refusals in progress, and call every connection's OnStop function, each
// in its own goroutine (SMTP: 421 at the next command boundary, never
// inside a message; IMAP: BYE once the response being written is out;
// POP3: goodbye, deletions not applied); then wait for every Handle to
// return. Phase 2, when the caller's context ends first: every remaining
// connection gets a deadline in the past, which later SetDeadline calls
// cannot move (a session renewing its deadline per command cannot undo
// it), the connections' contexts are cancelled so store calls give up,
// and Shutdown waits for the goroutines. Serve returns ErrServerClosed
// from then on. A Handle that panics is logged with its stack; its
// connection is closed and the server goes on.
//
// Deadlines serves the sessions our own code reads line by line (pop3d,
// managesieve): a read deadline per line, a write deadline per write, and
// Stop for OnStop.
package server
