// Package mailaddr answers the two questions about a mail address that the
// outbound packages (queue, dkim, dsn) all ask: what is its domain, and is
// it plain ASCII. It does not validate addresses for a protocol: smtpd
// checks SMTP paths and auth normalizes its users' addresses, each by its
// own rules. It imports nothing of ours.
package mailaddr
