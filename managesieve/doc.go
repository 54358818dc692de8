// Package managesieve is Posthouse's ManageSieve server (RFC 5804): users
// upload, check, list, fetch, rename, delete and activate their Sieve
// scripts with a mail client (Thunderbird's Sieve add-on, Roundcube's
// managesieve plugin, sieve-connect). Port 4190, STARTTLS (RFC 5804
// §2.2); there is no implicit-TLS port for ManageSieve.
//
// It owns the per-connection state machine (non-authenticated →
// authenticated, one command table per state), the command parser, the
// response writer and the mapping of store errors to response codes. It
// does not keep scripts or compile them: Store declares the methods of
// *sievestore.Store a session calls (names, quotas and compiling are
// sievestore's), and credentials come from an auth.SASL (*auth.DB: the
// same user database, credential cache and password-guessing throttle as
// IMAP, POP3 and submission). Accepting, connection ids, limits
// (Options.Conns; over a limit BYE (TRYLATER)) and the two-phase shutdown
// are package server's. The session follows pop3d's shape: handlers return
// a reply value, only the loop writes.
//
// # Commands
//
// Before authentication: CAPABILITY, STARTTLS, AUTHENTICATE (SASL PLAIN
// and LOGIN, with or without an initial response; a client response of
// "*" cancels with NO), NOOP (with its TAG), LOGOUT. After: CAPABILITY,
// HAVESPACE, PUTSCRIPT, CHECKSCRIPT, LISTSCRIPTS, SETACTIVE (""
// deactivates), GETSCRIPT, DELETESCRIPT, RENAMESCRIPT, NOOP,
// UNAUTHENTICATE, LOGOUT. A verb of the other state gets NO; an unknown
// one NO too (ManageSieve has no BAD).
//
// The greeting, and the unasked response after STARTTLS's handshake, is
// the capability list: IMPLEMENTATION, SASL (the mechanisms where
// AUTHENTICATE may be used, "" elsewhere), SIEVE (sieve.Extensions less
// the site's disabled ones), STARTTLS (before TLS, when configured),
// MAXREDIRECTS, OWNER (after authentication), VERSION "1.0",
// UNAUTHENTICATE. NOTIFY is not listed: package sieve has no enotify.
//
// Clients find the server through the _sieve._tcp SRV record (RFC 5804
// §1.8; posthouse admin dns prints it) or by hand. Thunderbird's autoconfig
// format (config-v1.1.xml) has no element for ManageSieve, so autoconfig
// says nothing of it; the Sieve add-on takes the IMAP host and port 4190.
//
// AUTHENTICATE is refused before TLS with NO (ENCRYPT-NEEDED), unless the
// client is on loopback and Options.LoopbackIsSecure is set (cmd uses
// [imap] loopback_is_secure: a webmail's managesieve plugin sits beside
// its IMAP client).
//
// # Replies and errors
//
// Store and auth errors meet the wire in one function (session.translate):
// a compile error → NO "line 3: … (column 5)"; sievestore.ErrTooLarge →
// NO (QUOTA/MAXSIZE); ErrTooManyScripts → NO (QUOTA/MAXSCRIPTS);
// ErrNotFound → NO (NONEXISTENT); ErrExists → NO (ALREADYEXISTS);
// ErrActive → NO (ACTIVE); ErrBadName → NO; bad credentials → NO;
// throttling → NO (TRYLATER). Anything else is logged with the connection
// id and becomes NO (TRYLATER) without its text. Shutdown, too many
// errors and idle timeouts say BYE.
//
// Strings we send are quoted when RFC 5804 §4 allows (UTF-8 without CR,
// LF or NUL, at most 1024 octets) and literals {n} otherwise; GETSCRIPT
// always sends a literal.
//
// # Limits
//
// The parser reads from the connection with bounds: a line (literal
// contents excluded) is at most 8 KiB, a quoted string 1024 octets (RFC
// 5804 §4), every string but a script 8 KiB, a script literal the
// store's MaxScriptBytes, a command two arguments. Literals may be
// non-synchronizing {n+} or synchronizing {n}; ManageSieve has no
// continuation request, so both are read at once. A refused literal (too
// large, or in a command already known to be bad) is read and thrown away
// so that its octets are never taken for commands: the client gets NO
// (QUOTA/MAXSIZE for a script) and the session goes on. The same for an
// overlong line, including a literal it announces at its end. What we
// throw away per command is bounded (64 KiB before authentication, four
// scripts' worth or 1 MiB after); past that the client gets BYE and the
// connection closes. Before authentication no string may exceed 8 KiB,
// so an anonymous client holds little memory.
//
// Each bad command counts; after Options.MaxErrors the connection is
// closed, and after Options.MaxAuthFailures failed AUTHENTICATEs as well.
// Deadlines are renewed before every line and literal: 30 seconds
// ([limits] login_timeout) and 3 minutes in all before authentication, 30
// minutes after (RFC 5804 sets none; a Sieve editor may stay open).
//
// # Logging
//
// One Info line per connect, TLS handshake, login, unauthenticate, script
// stored, activated, renamed or deleted (with its name and size) and
// disconnect (with counts), Warn for failed logins and abusive clients,
// Error for our own failures, all with conn, proto=managesieve, remote and,
// after login, user. At Debug level each command and reply status is
// logged, redacted: no initial response, no SASL exchange, no script.
//
// # Shutdown
//
// Shutdown (package server's two phases) first closes the listener and
// wakes sessions waiting for a command, which answer BYE (TRYLATER) and
// close; a session in the middle of a command finishes it. When the grace
// period ends, remaining connections get an immediate deadline and their
// contexts are cancelled, and Shutdown waits for their goroutines.
package managesieve
