// Package smtpclient is the SMTP client Posthouse's queue delivers with: it
// speaks RFC 5321 on a connection the caller opened, to one server, and
// reports each recipient's reply. It does not dial, look up MX hosts, decide
// on retries or keep any state beyond one connection: the queue does that.
// It imports nothing of ours.
//
// The client is ours rather than go-smtp's, because go-smtp's client sends
// one command at a time (no PIPELINING) and cannot send EHLO with our name
// before STARTTLS. It says EHLO with the caller's name (HELO when EHLO is
// refused as unknown), upgrades with StartTLS when the caller asks,
// declares SIZE, BODY=8BITMIME and SMTPUTF8 when the message needs them and
// the server offers them, pipelines MAIL and all RCPTs (RFC 2920) and sends
// DATA only when a recipient was accepted. After a refused MAIL, the MAIL
// reply stands for every recipient. Whether a message may go to a server
// (SIZE, 8BITMIME, SMTPUTF8 missing) is the caller's decision, from Has and
// MaxSize.
//
// Opportunistic TLS (RFC 7435): the caller's tls.Config decides what is
// verified. Any STARTTLS failure (the command or the handshake) leaves the
// connection unusable: the caller closes it and never goes on in plaintext
// on it.
//
// Every read and write has a deadline (RFC 5321 §4.5.3.2, the caller's
// Timeouts; defaults 5 minutes for the greeting, EHLO, MAIL and RCPT, 2
// for DATA, 3 per block of data written, 10 for the reply to the end of
// data). A reply's deadline covers the whole reply, not each read, and a
// reply is bounded in size (2048 octets a line, 100 lines, 16 KiB in all),
// so a server that answers one byte a second is cut off like a silent one;
// the connection as a whole has a limit too (Timeouts.Connection, default
// 30 minutes, every message on it included). A deadline that passes is a
// TimeoutError naming what we were waiting for ("greeting", "reply to end
// of data"), which the queue records as the reason of the deferral. The
// caller cancels an attempt by setting a past deadline on the connection
// when its context ends, and the client checks that context after each
// deadline it sets. Anything that does not parse as a reply is a protocol
// error. A transaction carries at most MaxRcptsPerTransaction recipients.
//
// Replies are Reply values, "temporary or permanent" explicit: Permanent is
// 5xx, and anything else that is not positive, including codes outside the
// RFC, counts as temporary. Reply.String is the form the queue stores and
// ParseReply reads back.
package smtpclient
