// Package pop3d is Posthouse's POP3 server: RFC 1939 with the RFC 2449
// extension mechanism (CAPA, TOP, UIDL, USER, SASL, RESP-CODES,
// AUTH-RESP-CODE, PIPELINING, IMPLEMENTATION), STLS (RFC 2595) and AUTH
// (RFC 5034). APOP is not offered: it needs the plaintext password on the
// server.
//
// It owns the per-connection state machine
// (AUTHORIZATION → TRANSACTION → UPDATE, one command table per state),
// the command parser, the reply writer and the maildrop lock. It never
// touches Maildir files: messages come from a Store, credentials from an
// auth.Authenticator (*auth.DB in production). Store and Account declare the
// eight account methods a session calls; a mailstore.Store serves them
// through MailStore, and the tests' in-memory fake implements exactly
// those. Accepting, connection ids, limits (Options.Conns; over a limit
// "-ERR [SYS/TEMP] too many connections", after a TLS handshake on pop3s)
// and the two-phase shutdown are package server's.
//
// # Maildrop
//
// The maildrop is the account's INBOX, the same mailbox IMAP shows. At
// login the session takes the account's exclusive POP3 lock
// (Account.LockMaildrop; a second POP3 login gets -ERR [IN-USE], IMAP and
// delivery go on) and a snapshot of INBOX: UIDs and sizes in ascending UID
// order, which become message numbers 1..n for the whole session. New mail
// shows up in the next session. A message expunged over IMAP during the
// session keeps its number; RETR and TOP of it get a plain -ERR.
//
// UIDL values are "<uidvalidity>.<uid>": the message's lasting identity in
// the store, so they survive sessions, restarts and other messages'
// deletion, and change only if the index is rebuilt with a new
// UIDVALIDITY (then clients download again, which is the safe direction).
//
// Sizes in LIST and STAT are the stored sizes; messages are stored with
// CRLF line ends, so they are exactly the octets RETR sends before
// byte-stuffing (RFC 1939 §11 allows the stuffing difference).
//
// DELE only marks. At QUIT (UPDATE state) the marked messages are flagged
// \Deleted and exactly those UIDs are expunged; a \Deleted flag set by an
// IMAP client on other messages is left alone. A session that ends any
// other way (client gone, idle timeout, shutdown, write failure) applies no
// deletion. RETR marks the message \Seen for IMAP users who "leave a copy
// on the server"; those marks are written in one store call at the end of
// the session, whether or not it ended with QUIT (at QUIT, messages about
// to be expunged are skipped). TOP does not mark.
//
// # Replies and errors
//
// Handlers return a reply value; only the session loop writes, through one
// dot-stuffing writer with CRLF line ends. Replies to pipelined commands
// are flushed together when the client's input buffer is drained. Store
// and auth errors meet the wire in one function (session.translate):
// bad credentials → -ERR [AUTH], throttling → -ERR [SYS/TEMP], a locked
// maildrop → -ERR [IN-USE]; anything else is logged with the connection id
// and becomes -ERR [SYS/TEMP] without its text.
//
// # Limits
//
// Command lines are limited to 255 octets including CRLF (RFC 2449 §4;
// Options.MaxLineLength can raise it);
// SASL response lines to 8 KiB (RFC 5034 §4 exempts them from the 255
// limit). An overlong line is discarded to its end and answered with -ERR;
// one that runs past 64 KiB closes the connection. Lines ending in a bare
// LF are accepted. Control characters (NUL included) in a command are a
// syntax error. Each bad command counts; after Options.MaxErrors the
// connection is closed, and after Options.MaxAuthFailures failed logins as
// well. The autologout timer is 10 minutes after login (RFC 1939 §3
// requires at least that) but 30 seconds per command (Options.LoginTimeout,
// the same as IMAP's before login; [limits] login_timeout sets both) and 3
// minutes in total before it: that is shorter than RFC 1939 asks, so that
// unauthenticated connections cannot hold slots; every real client logs in
// at once.
//
// USER, PASS and AUTH are refused before TLS (STLS on port 110, or
// implicit TLS on 995) unless the client is on loopback and
// Options.LoopbackIsSecure is set; CAPA lists USER and SASL only where
// they may be used.
//
// # Logging
//
// One Info line per connect, TLS handshake, login and disconnect (with
// counts), Warn for failed logins and abusive clients, Error for our own
// failures, all with conn, proto=pop3, remote and, after login, user. At
// Debug level each command and reply status line is logged, redacted: no
// PASS argument, no AUTH initial response, no SASL exchange, no message
// content.
//
// # Shutdown
//
// Shutdown (package server's two phases) first closes the listeners and
// wakes sessions waiting for a command, which answer -ERR [SYS/TEMP] and
// close without applying deletions; a session in the middle of a command
// finishes it (a QUIT under way completes its UPDATE). When the grace
// period ends, remaining connections get an immediate deadline and their
// contexts are cancelled, and Shutdown waits for their goroutines.
package pop3d
