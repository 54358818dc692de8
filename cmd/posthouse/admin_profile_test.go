package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smallstep/pkcs7"
	"howett.net/plist"

	"github.com/posthouse/posthouse/certs/certstest"
)

func TestAdminUserProfile(t *testing.T) {
	dir := t.TempDir()
	ca := certstest.NewCA()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certstest.WriteFiles(t, ca.Leaf("mail.example.org"), certFile, keyFile)
	base := "hostname = \"mail.example.org\"\ndata_dir = \"" + filepath.Join(dir, "data") + "\"\n"
	selfSigned := filepath.Join(dir, "self.toml")
	withCert := filepath.Join(dir, "cert.toml")
	os.WriteFile(selfSigned, []byte(base), 0o644)
	os.WriteFile(withCert, []byte(base+"[tls]\ncert_file = \""+certFile+"\"\nkey_file = \""+keyFile+"\"\n"), 0o644)

	admin := func(cfg, stdin string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"admin", "--config", cfg}, args...), strings.NewReader(stdin), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, e := admin(selfSigned, "", "domain", "add", "example.org"); code != 0 {
		t.Fatal(e)
	}
	if code, _, e := admin(selfSigned, "pw-alice\n", "user", "add", "--password-stdin", "alice@example.org"); code != 0 {
		t.Fatal(e)
	}
	mail := func(data []byte) map[string]any {
		t.Helper()
		var top map[string]any
		if _, err := plist.Unmarshal(data, &top); err != nil {
			t.Fatalf("%v\n%s", err, data)
		}
		return top["PayloadContent"].([]any)[0].(map[string]any)
	}

	code, out, stderr := admin(selfSigned, "", "user", "profile", "--apple", "--name", "Alice", "alice@example.org")
	if code != 0 || !strings.Contains(stderr, "not signed") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	m := mail([]byte(out))
	if m["IncomingMailServerHostName"] != "mail.example.org" || m["IncomingMailServerPortNumber"] != uint64(993) ||
		m["OutgoingMailServerPortNumber"] != uint64(465) || m["EmailAccountName"] != "Alice" || m["IncomingPassword"] != nil {
		t.Errorf("payload %v", m)
	}

	// The password goes in only when asked for, and only the right one.
	if code, _, stderr := admin(selfSigned, "wrong\n", "user", "profile", "--apple", "--with-password", "--password-stdin", "alice@example.org"); code == 0 {
		t.Errorf("a wrong password was put in a profile: %s", stderr)
	}
	code, out, stderr = admin(selfSigned, "pw-alice\n", "user", "profile", "--apple", "--with-password", "--password-stdin", "alice@example.org")
	if code != 0 {
		t.Fatal(stderr)
	}
	if m := mail([]byte(out)); m["IncomingPassword"] != "pw-alice" {
		t.Errorf("IncomingPassword %v", m["IncomingPassword"])
	}

	// With a real certificate the profile is signed with it.
	code, out, stderr = admin(withCert, "", "user", "profile", "--apple", "alice@example.org")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	p7, err := pkcs7.Parse([]byte(out))
	if err != nil {
		t.Fatalf("not signed: %v", err)
	}
	if err := p7.VerifyWithChain(ca.Pool()); err != nil {
		t.Fatal(err)
	}
	mail(p7.Content)

	for _, args := range [][]string{
		{"user", "profile", "alice@example.org"},                 // no format
		{"user", "profile", "--apple", "nobody@example.org"},     // no such user
		{"user", "profile", "--apple", "a@example.org", "extra"}, // too many
	} {
		if code, _, _ := admin(selfSigned, "", args...); code == 0 {
			t.Errorf("%q succeeded", args)
		}
	}
}

// check-config and admin dns say when the autoconfig/autodiscover records
// they print cannot work: no http(s) listener, no https for Outlook, or
// https with the self-signed certificate.
func TestClientSetupWarnings(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certstest.WriteFiles(t, certstest.NewCA().Leaf("mail.example.org"), certFile, keyFile)
	base := "hostname = \"mail.example.org\"\ndata_dir = \"" + filepath.Join(dir, "data") + "\"\n"
	for _, tc := range []struct {
		name, toml string
		want       []string // substrings, one per warning; none: no warning
	}{
		{"no http", "", []string{"http and https are off"}},
		{"http only", "[listen]\nhttp = \"127.0.0.1:8081\"\n", []string{"https is off"}},
		{"https self-signed", "[listen]\nhttps = \"127.0.0.1:8443\"\n", []string{"self-signed certificate"}},
		{"https real", "[listen]\nhttps = \"127.0.0.1:8443\"\n[tls]\ncert_file = \"" + certFile + "\"\nkey_file = \"" + keyFile + "\"\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".toml")
			os.WriteFile(cfg, []byte(base+tc.toml), 0o644)
			for _, args := range [][]string{
				{"check-config", "--config", cfg},
				{"admin", "--config", cfg, "dns", "example.org"},
			} {
				var out, errb bytes.Buffer
				if code := run(context.Background(), args, strings.NewReader(""), &out, &errb); code != 0 {
					t.Fatalf("%q: exit %d: %s", args, code, errb.String())
				}
				got := strings.Count(errb.String(), "warning: ")
				if got != len(tc.want) {
					t.Errorf("%q: %d warnings, want %d: %s", args, got, len(tc.want), errb.String())
				}
				for _, w := range tc.want {
					if !strings.Contains(errb.String(), w) {
						t.Errorf("%q: stderr lacks %q: %s", args, w, errb.String())
					}
				}
			}
		})
	}
}
