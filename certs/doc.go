// Package certs is where every TLS listener of Posthouse (SMTP, POP3, IMAP,
// HTTPS) gets its certificate: one Source per process, so a renewal or a
// reload reaches all of them at once.
//
// Sources:
//   - Files: a PEM certificate chain and key named in the config, reloaded
//     when either file changes (checked at most every ReloadCheckInterval on
//     a handshake) and on demand (SIGHUP). A reload that fails keeps the old
//     certificate and logs why.
//   - ACME: certificates from an ACME CA (Let's Encrypt by default, any
//     directory URL by config) through golang.org/x/crypto/acme/autocert,
//     for the hostname and the client-setup names (autoconfig.<domain>,
//     autodiscover.<domain>) of local domains. HTTP-01 is answered on the
//     http listener (port 80), TLS-ALPN-01 on the https listener (443).
//     Certificates and the account key are cached under the data directory
//     and renewed before they expire.
//   - SelfSigned: the certificate Posthouse makes for itself when neither
//     is configured, kept in a directory (cmd/posthouse: <data_dir>/tls/,
//     cert.pem and key.pem, owner-only, written durably) and reused at the
//     next start. It is an ECDSA P-256 end-entity certificate (CA:FALSE,
//     serverAuth, SAN with the hostname, localhost, 127.0.0.1 and ::1):
//     Thunderbird refuses a CA:TRUE certificate used as a server
//     certificate, even after the user accepts it. It is valid 820 days
//     (Apple's clients refuse more than 825) and made anew at a start
//     within 30 days of its end, when the hostname changed, or when the
//     files are damaged (those are kept aside as *.broken).
//
// Mail clients often send no SNI on STARTTLS (and never on plain IPs); a
// handshake without a server name is answered with the hostname's
// certificate.
package certs
