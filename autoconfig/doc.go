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
//     Without a usable HTTPS answer for autodiscover.<domain>, Outlook GETs
//     http://autodiscover.<domain>/autodiscover/autodiscover.xml: with the
//     https listener on, that is redirected (302) to our hostname's HTTPS
//     endpoint.
//   - Outlook (new), Outlook for iOS/Android and phones ask for the
//     mobilesync (ActiveSync) schema or for autodiscover v2,
//     GET /autodiscover/autodiscover.json/v1.0/{address}?Protocol=… (or
//     ?Email=…&Protocol=…), in any case. We speak no ActiveSync: mobilesync
//     gets a well-formed error 600, and v2 answers AutodiscoverV1 with the
//     HTTPS POX URL and every other protocol with Microsoft's
//     ProtocolNotSupported, so the client falls back to IMAP and SMTP.
//
// Outlook quirk: <Encryption>TLS</Encryption> makes Outlook try STARTTLS, so
// implicit-TLS ports (993, 995, 465) are described with <SSL>on</SSL> and only
// STARTTLS ports (143, 587) with <Encryption>TLS</Encryption>.
//
// The package only describes Posthouse's listeners; it reads no mail and
// never says whether a user exists (any address in a local domain gets the
// same answer).
package autoconfig
