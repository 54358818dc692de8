// Package metrics counts what Posthouse does, for Prometheus
// (client_golang, served by Handler on the admin listener) and for the
// web console's dashboard (Last24h). It imports nothing of ours: the
// protocol packages expose small hooks (an Options func, a wrapped
// interface) and cmd/posthouse connects them to a Recorder, so that smtpd,
// imapd, pop3d, the queue and dns never import this package.
//
// # Metrics
//
//	posthouse_connections_total{proto}                      accepted TCP connections per listener
//	posthouse_auth_total{proto,result}                      logins: success, failure, throttled, error
//	posthouse_messages_received_total{mode}                 messages accepted by SMTP: mta (port 25), submission
//	posthouse_messages_rejected_total{stage,reason,class}   refused MAIL, RCPT or DATA; class temporary|permanent
//	posthouse_deliveries_total{result}                      local copies stored (stored, failed)
//	posthouse_queue_messages                                messages in the outbound queue
//	posthouse_queue_oldest_seconds                          age of the oldest (0 when empty)
//	posthouse_delivery_attempts_total{result}               outbound attempts per recipient: delivered, deferred, bounced
//	posthouse_dns_lookup_duration_seconds{type,result}      DNS exchanges (ok, notfound, error)
//	posthouse_store_commit_duration_seconds                 one local copy made durable (file, fsync, index commit)
//	posthouse_imap_command_duration_seconds{command}        IMAP commands, to the tagged reply (IDLE excluded)
//
// plus client_golang's go_* and process_* collectors.
//
// Label values come from fixed lists (protocol names, IMAP command names,
// DNS types, reasons the callers name); anything else is counted as
// "other", so no client can grow the number of series. No label holds a
// user, an address or a host.
//
// # The dashboard's 24 hours
//
// Last24h sums messages received on port 25 (In), received on submission
// (Out: what users sent) and rejections (Rejected) over the current hour
// and the 23 before it. The counts are kept per hour (25 buckets) and
// written to data_dir/metrics-24h.json at most once a minute and at Close
// (a temporary file, fsynced, renamed into place), so a restart loses at
// most the last minute. The file is a few kilobytes; a damaged one is
// logged and started afresh.
package metrics
