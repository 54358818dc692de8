// Package readerat joins byte sources into one re-readable message: the
// header fields a server writes in front of a message (trace fields, a
// stored DKIM signature) and the spool file they go in front of, with
// ranges of it left out (Cut). smtpd, the queue and the delivery pipeline read a
// message several times (filters, one copy per account, a queue entry)
// without ever holding it whole in memory. It imports nothing of ours.
package readerat
