package autoconfig

import (
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/smallstep/pkcs7"
	"howett.net/plist"
)

// Apple devices (iPhone, iPad, Mac Mail) do no autodiscovery: they install
// a configuration profile (.mobileconfig, a property list) instead. Its
// mail payload is com.apple.mail.managed, with the keys Apple documents in
// the Device Management "Mail" payload reference.

// Profile describes one user's Apple configuration profile.
type Profile struct {
	Address     string // the login name and the sending address
	DisplayName string // the name on sent mail; "" leaves it to the device
	// Password is put in the profile when not empty; otherwise the device
	// asks for it while installing.
	Password string
	// Organization names who made the profile (shown by the installer).
	Organization string
}

// appleMail is the com.apple.mail.managed payload.
type appleMail struct {
	PayloadType        string `plist:"PayloadType"`
	PayloadVersion     int    `plist:"PayloadVersion"`
	PayloadIdentifier  string `plist:"PayloadIdentifier"`
	PayloadUUID        string `plist:"PayloadUUID"`
	PayloadDisplayName string `plist:"PayloadDisplayName"`

	EmailAccountDescription string `plist:"EmailAccountDescription"`
	EmailAccountName        string `plist:"EmailAccountName,omitempty"`
	EmailAccountType        string `plist:"EmailAccountType"`
	EmailAddress            string `plist:"EmailAddress"`

	IncomingMailServerAuthentication string `plist:"IncomingMailServerAuthentication"`
	IncomingMailServerHostName       string `plist:"IncomingMailServerHostName"`
	IncomingMailServerPortNumber     int    `plist:"IncomingMailServerPortNumber"`
	IncomingMailServerUseSSL         bool   `plist:"IncomingMailServerUseSSL"`
	IncomingMailServerUsername       string `plist:"IncomingMailServerUsername"`
	IncomingPassword                 string `plist:"IncomingPassword,omitempty"`

	OutgoingMailServerAuthentication       string `plist:"OutgoingMailServerAuthentication"`
	OutgoingMailServerHostName             string `plist:"OutgoingMailServerHostName"`
	OutgoingMailServerPortNumber           int    `plist:"OutgoingMailServerPortNumber"`
	OutgoingMailServerUseSSL               bool   `plist:"OutgoingMailServerUseSSL"`
	OutgoingMailServerUsername             string `plist:"OutgoingMailServerUsername"`
	OutgoingPasswordSameAsIncomingPassword bool   `plist:"OutgoingPasswordSameAsIncomingPassword"`
}

// appleProfile is the top-level Configuration payload.
type appleProfile struct {
	PayloadContent           []appleMail `plist:"PayloadContent"`
	PayloadDescription       string      `plist:"PayloadDescription"`
	PayloadDisplayName       string      `plist:"PayloadDisplayName"`
	PayloadIdentifier        string      `plist:"PayloadIdentifier"`
	PayloadOrganization      string      `plist:"PayloadOrganization,omitempty"`
	PayloadRemovalDisallowed bool        `plist:"PayloadRemovalDisallowed"`
	PayloadType              string      `plist:"PayloadType"`
	PayloadUUID              string      `plist:"PayloadUUID"`
	PayloadVersion           int         `plist:"PayloadVersion"`
}

// AppleProfile returns the user's configuration profile as an XML property
// list: one IMAP account (IMAPS preferred over IMAP with STARTTLS) sending
// through submission (465 preferred over 587), login name = address. The
// identifiers and UUIDs derive from the hostname and the address, so
// installing a newer profile for the same user replaces the old one.
func (h *Handler) AppleProfile(ctx context.Context, p Profile) ([]byte, error) {
	o := h.opts
	in := pick(o.IMAPS, o.IMAP)
	out := pick(o.Submissions, o.Submission)
	if in.Port == 0 || out.Port == 0 {
		return nil, errors.New("an Apple profile needs an IMAP listener (imaps or imap) and a submission listener (submissions or submission)")
	}
	addr, domain, err := h.checkAddress(ctx, p.Address)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Address, err)
	}
	// Identifiers are reverse-DNS names under the server's hostname.
	base := reverseDNS(o.Hostname) + ".posthouse"
	mail := appleMail{
		PayloadType:        "com.apple.mail.managed",
		PayloadVersion:     1,
		PayloadIdentifier:  base + ".mail." + addr,
		PayloadUUID:        nameUUID("mail:" + o.Hostname + ":" + addr),
		PayloadDisplayName: addr,

		EmailAccountDescription: addr,
		EmailAccountName:        p.DisplayName,
		EmailAccountType:        "EmailTypeIMAP",
		EmailAddress:            addr,

		IncomingMailServerAuthentication: "EmailAuthPassword",
		IncomingMailServerHostName:       o.Hostname,
		IncomingMailServerPortNumber:     in.Port,
		// With STARTTLS ports the device upgrades the connection when
		// "SSL" is on; it never sends the password in clear.
		IncomingMailServerUseSSL:   true,
		IncomingMailServerUsername: addr,
		IncomingPassword:           p.Password,

		OutgoingMailServerAuthentication:       "EmailAuthPassword",
		OutgoingMailServerHostName:             o.Hostname,
		OutgoingMailServerPortNumber:           out.Port,
		OutgoingMailServerUseSSL:               true,
		OutgoingMailServerUsername:             addr,
		OutgoingPasswordSameAsIncomingPassword: true,
	}
	prof := appleProfile{
		PayloadContent:      []appleMail{mail},
		PayloadDescription:  "Mail settings for " + addr + " (IMAP and SMTP at " + o.Hostname + ")",
		PayloadDisplayName:  domain + " mail",
		PayloadIdentifier:   base + ".profile." + addr,
		PayloadOrganization: p.Organization,
		PayloadType:         "Configuration",
		PayloadUUID:         nameUUID("profile:" + o.Hostname + ":" + addr),
		PayloadVersion:      1,
	}
	return plist.MarshalIndent(prof, plist.XMLFormat, "\t")
}

// SignProfile wraps a profile in a CMS SignedData (DER, content attached),
// which the installer shows as "Verified" when cert chains to a root the
// device trusts. chain holds the intermediates, leaf excluded.
func SignProfile(profile []byte, cert *x509.Certificate, chain []*x509.Certificate, key crypto.Signer) ([]byte, error) {
	sd, err := pkcs7.NewSignedData(profile)
	if err != nil {
		return nil, err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(cert, key, chain, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("signing the profile: %w", err)
	}
	return sd.Finish()
}

// reverseDNS turns mail.example.com into com.example.mail.
func reverseDNS(host string) string {
	labels := strings.Split(strings.ToLower(strings.TrimSuffix(host, ".")), ".")
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	return strings.Join(labels, ".")
}

// nameUUID is an RFC 9562 version 5 (name-based, SHA-1) UUID in the URL
// namespace: the same name always gives the same UUID.
func nameUUID(name string) string {
	ns := [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
