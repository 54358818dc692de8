// Package dsn builds delivery status notifications (RFC 3464): the message
// Posthouse sends an envelope sender when mail could not be delivered
// (action "failed") or is still being retried (action "delayed"). It owns
// the DSN's shape, pinned by golden files in testdata: a multipart/report
// (RFC 6522) with a text part for people, a message/delivery-status part
// with one group per recipient (Final-Recipient, Action, Status,
// Remote-MTA and Diagnostic-Code when a server answered, Last-Attempt-Date,
// Will-Retry-Until for delays), and the original header as
// text/rfc822-headers. When an address is not ASCII, the global types of
// RFC 6533 are used (message/global-delivery-status, message/global-headers,
// "utf-8;" address types).
//
// A recipient's Status is the enhanced code of the reply it got (RFC 3463),
// 4.4.7 when the message expired, else the reply's class with .0.0. Reply
// text goes into header fields on one line, without control characters, at
// most 900 octets. The From is MAILER-DAEMON at the reporting host and
// Auto-Submitted is auto-replied (RFC 3834 §5).
//
// It does not decide when a DSN is due, to whom it goes or how it is
// delivered (never for a message with the null sender, RFC 5321 §4.5.5):
// the queue does, as its package doc describes. It reads replies in the
// form smtpclient.Reply.String writes them.
package dsn
