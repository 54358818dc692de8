// Package autoconfig serves what mail clients fetch to configure themselves
// from nothing but an address and a password:
//
//   - Thunderbird (and K-9/Thunderbird for Android, Evolution, …):
//     GET /mail/config-v1.1.xml?emailaddress=… and
//     GET /.well-known/autoconfig/mail/config-v1.1.xml, answered in the
//     Mozilla ISPDB "clientConfig" format, usually asked of autoconfig.<domain>.
//   - Outlook (classic): POST /autodiscover/autodiscover.xml with a POX
//     request naming EMailAddress and the outlook response schema 2006a,
//     usually asked of autodiscover.<domain>.
//   - Outlook (new) and phones ask for the mobilesync (ActiveSync) schema or
//     for GET /autodiscover/autodiscover.json (autodiscover v2). We speak no
//     ActiveSync: mobilesync gets a well-formed error 600 so the client falls
//     back to IMAP, and the JSON endpoint points at the v1 XML endpoint.
//
// Outlook quirk: <Encryption>TLS</Encryption> makes Outlook try STARTTLS, so
// implicit-TLS ports (993, 995, 465) are described with <SSL>on</SSL> and only
// STARTTLS ports (143, 587) with <Encryption>TLS</Encryption>.
//
// The package only describes Posthouse's listeners; it reads no mail and
// never says whether a user exists (any address in a local domain gets the
// same answer).
package autoconfig
