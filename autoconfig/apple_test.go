package autoconfig

import (
	"context"
	"crypto"
	"crypto/x509"
	"regexp"
	"strings"
	"testing"

	"github.com/smallstep/pkcs7"
	"howett.net/plist"

	"github.com/posthouse/posthouse/certs/certstest"
)

// The keys Apple's Device Management reference documents for the
// top-level Configuration payload and for com.apple.mail.managed; every
// key a profile carries must be one of them, with the documented type.
var (
	appleTopKeys = map[string]string{
		"PayloadContent": "array", "PayloadDescription": "string", "PayloadDisplayName": "string",
		"PayloadIdentifier": "string", "PayloadOrganization": "string", "PayloadRemovalDisallowed": "bool",
		"PayloadType": "string", "PayloadUUID": "string", "PayloadVersion": "int",
	}
	appleMailKeys = map[string]string{
		"PayloadType": "string", "PayloadVersion": "int", "PayloadIdentifier": "string", "PayloadUUID": "string",
		"PayloadDisplayName": "string", "PayloadDescription": "string", "PayloadOrganization": "string",
		"EmailAccountDescription": "string", "EmailAccountName": "string", "EmailAccountType": "string",
		"EmailAddress": "string", "IncomingMailServerAuthentication": "string", "IncomingMailServerHostName": "string",
		"IncomingMailServerPortNumber": "int", "IncomingMailServerUseSSL": "bool", "IncomingMailServerUsername": "string",
		"IncomingPassword": "string", "OutgoingMailServerAuthentication": "string", "OutgoingMailServerHostName": "string",
		"OutgoingMailServerPortNumber": "int", "OutgoingMailServerUseSSL": "bool", "OutgoingMailServerUsername": "string",
		"OutgoingPassword": "string", "OutgoingPasswordSameAsIncomingPassword": "bool", "PreventMove": "bool",
		"PreventAppSheet": "bool", "SMIMEEnabled": "bool", "allowMailDrop": "bool", "disableMailRecentsSyncing": "bool",
	}
	uuidRE = regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-5[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`)
)

func checkKeys(t *testing.T, what string, m map[string]any, allowed map[string]string) {
	t.Helper()
	for k, v := range m {
		want, ok := allowed[k]
		if !ok {
			t.Errorf("%s: key %q is not in Apple's payload reference", what, k)
			continue
		}
		got := ""
		switch v.(type) {
		case string:
			got = "string"
		case bool:
			got = "bool"
		case uint64, int64:
			got = "int"
		case []any:
			got = "array"
		}
		if got != want {
			t.Errorf("%s: %s is %T, want %s", what, k, v, want)
		}
	}
}

func parseProfile(t *testing.T, data []byte) (top map[string]any, mail map[string]any) {
	t.Helper()
	if _, err := plist.Unmarshal(data, &top); err != nil {
		t.Fatalf("not a property list: %v\n%s", err, data)
	}
	checkKeys(t, "profile", top, appleTopKeys)
	content, _ := top["PayloadContent"].([]any)
	if len(content) != 1 {
		t.Fatalf("PayloadContent: %v", top["PayloadContent"])
	}
	mail, _ = content[0].(map[string]any)
	checkKeys(t, "mail payload", mail, appleMailKeys)
	return top, mail
}

func TestAppleProfile(t *testing.T) {
	h := newHandler()
	data, err := h.AppleProfile(context.Background(), Profile{Address: "Alice@Example.com", DisplayName: "Alice Liddell", Organization: "Example Ltd"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "<?xml") || !strings.Contains(string(data), "<!DOCTYPE plist") {
		t.Fatalf("not an XML plist:\n%s", data)
	}
	top, mail := parseProfile(t, data)
	for k, want := range map[string]any{
		"PayloadType": "Configuration", "PayloadVersion": uint64(1), "PayloadDisplayName": "example.com mail",
		"PayloadIdentifier": "com.example.mail.posthouse.profile.alice@example.com", "PayloadOrganization": "Example Ltd",
		"PayloadRemovalDisallowed": false,
	} {
		if top[k] != want {
			t.Errorf("profile %s = %#v, want %#v", k, top[k], want)
		}
	}
	for k, want := range map[string]any{
		"PayloadType": "com.apple.mail.managed", "EmailAccountType": "EmailTypeIMAP", "EmailAddress": "alice@example.com",
		"EmailAccountName":           "Alice Liddell",
		"IncomingMailServerHostName": "mail.example.com", "IncomingMailServerPortNumber": uint64(993),
		"IncomingMailServerUseSSL": true, "IncomingMailServerUsername": "alice@example.com",
		"IncomingMailServerAuthentication": "EmailAuthPassword",
		"OutgoingMailServerHostName":       "mail.example.com", "OutgoingMailServerPortNumber": uint64(465),
		"OutgoingMailServerUseSSL": true, "OutgoingMailServerUsername": "alice@example.com",
		"OutgoingMailServerAuthentication": "EmailAuthPassword", "OutgoingPasswordSameAsIncomingPassword": true,
	} {
		if mail[k] != want {
			t.Errorf("mail %s = %#v, want %#v", k, mail[k], want)
		}
	}
	if _, ok := mail["IncomingPassword"]; ok {
		t.Error("a password is in a profile made without one")
	}
	for _, u := range []any{top["PayloadUUID"], mail["PayloadUUID"]} {
		if s, _ := u.(string); !uuidRE.MatchString(s) {
			t.Errorf("PayloadUUID %q is not a version 5 UUID", u)
		}
	}
	if top["PayloadUUID"] == mail["PayloadUUID"] {
		t.Error("profile and payload share a UUID")
	}
	// The same user gets the same identifiers (a new profile replaces the
	// old one on the device); another user gets others.
	again, _ := h.AppleProfile(context.Background(), Profile{Address: "alice@example.com", Password: "s3cret"})
	top2, mail2 := parseProfile(t, again)
	if top2["PayloadUUID"] != top["PayloadUUID"] || mail2["PayloadIdentifier"] != mail["PayloadIdentifier"] {
		t.Error("identifiers differ for the same user")
	}
	if mail2["IncomingPassword"] != "s3cret" {
		t.Errorf("IncomingPassword = %v", mail2["IncomingPassword"])
	}
	bob, _ := h.AppleProfile(context.Background(), Profile{Address: "bob@example.com"})
	top3, _ := parseProfile(t, bob)
	if top3["PayloadUUID"] == top["PayloadUUID"] {
		t.Error("two users share a profile UUID")
	}

	// STARTTLS ports only: 143 and 587.
	h2 := New(Options{Hostname: "mail.example.com", Domains: domains{"example.com": true},
		IMAP: Service{Port: 143, STARTTLS: true}, Submission: Service{Port: 587, STARTTLS: true}})
	data, err = h2.AppleProfile(context.Background(), Profile{Address: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	_, mail = parseProfile(t, data)
	if mail["IncomingMailServerPortNumber"] != uint64(143) || mail["OutgoingMailServerPortNumber"] != uint64(587) {
		t.Errorf("ports %v %v", mail["IncomingMailServerPortNumber"], mail["OutgoingMailServerPortNumber"])
	}

	for _, tc := range []struct {
		h    *Handler
		addr string
	}{
		{newHandler(), "bob@elsewhere.org"},
		{newHandler(), "not an address"},
		{New(Options{Hostname: "mail.example.com", IMAPS: Service{Port: 993}}), "alice@example.com"},
	} {
		if _, err := tc.h.AppleProfile(context.Background(), Profile{Address: tc.addr}); err == nil {
			t.Errorf("%s: made a profile", tc.addr)
		}
	}
}

// A signed profile is CMS SignedData whose content is the profile and
// whose signature verifies with the server's certificate chain.
func TestSignProfile(t *testing.T) {
	ca := certstest.NewCA()
	leaf := ca.Leaf("mail.example.com")
	cert, err := x509.ParseCertificate(leaf.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	data, err := newHandler().AppleProfile(context.Background(), Profile{Address: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignProfile(data, cert, nil, leaf.PrivateKey.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	p7, err := pkcs7.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	if string(p7.Content) != string(data) {
		t.Fatal("signed content is not the profile")
	}
	if err := p7.VerifyWithChain(ca.Pool()); err != nil {
		t.Fatalf("signature: %v", err)
	}
	parseProfile(t, p7.Content)
	// Signed by another CA's certificate: verification against ours fails.
	other := certstest.NewCA().Leaf("mail.example.com")
	oc, _ := x509.ParseCertificate(other.Certificate[0])
	signed2, _ := SignProfile(data, oc, nil, other.PrivateKey.(crypto.Signer))
	p72, _ := pkcs7.Parse(signed2)
	if err := p72.VerifyWithChain(ca.Pool()); err == nil {
		t.Fatal("a foreign signature verified")
	}
}

func TestNameUUID(t *testing.T) {
	// Python: str(uuid.uuid5(uuid.NAMESPACE_URL, "https://www.python.org/")).upper()
	if got := nameUUID("https://www.python.org/"); got != "5406F80D-92E9-51CD-A176-77445955E733" {
		t.Fatal(got)
	}
}
