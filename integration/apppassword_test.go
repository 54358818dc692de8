package integration

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// pythonSMTPLogin logs in on implicit TLS with argv's credentials and
// sends one message to the user; it prints "ok" or the SMTP error.
const pythonSMTPLogin = `
import smtplib, ssl, sys
host, port, cafile, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False
try:
    with smtplib.SMTP_SSL(host, port, timeout=20, context=ctx) as s:
        s.login(user, password)
        s.sendmail(user, [user], b"From: " + user.encode() + b"\r\nSubject: sent with an app password\r\n\r\nhello\r\n")
    print("ok")
except smtplib.SMTPResponseException as e:
    print("error", e.smtp_code, e.smtp_error.decode())
`

// TestAppPasswordLogins: an app password made with posthouse admin logs in
// over IMAP (go-imap) and SMTP AUTH (Python smtplib) next to the account
// password, its last use shows in the list, and after revoke (while the
// server runs) both logins fail with the protocol's bad-credentials reply.
func TestAppPasswordLogins(t *testing.T) {
	py := needTool(t, "python3")
	s := startServer(t, "")
	const user, pass = "pat@example.org", "pat-account-pw"
	s.AddUser(t, user, pass)
	out := s.Admin(t, "", "user", "app-password", "add", user, "Pat's phone")
	m := regexp.MustCompile(`(?m)^    ([a-z]{4}(?:-[a-z]{4}){4})$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no app password in:\n%s", out)
	}
	secret := m[1]

	imapLogin := func(password string) error {
		t.Helper()
		c, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{TLSConfig: s.imapTLS()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.Login(user, password).Wait()
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "login.py")
	os.WriteFile(script, []byte(pythonSMTPLogin), 0o600)
	_, port, _ := net.SplitHostPort(s.Addr("submissions"))
	smtpLogin := func(password string) string {
		t.Helper()
		out, err := exec.Command(py, script, "127.0.0.1", port, filepath.Join(s.DataDir, "tls", "cert.pem"), user, password).CombinedOutput()
		if err != nil {
			t.Fatalf("python3: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}

	if err := imapLogin(secret); err != nil {
		t.Fatalf("IMAP LOGIN with the app password: %v", err)
	}
	// Without dashes, as someone might type it on a phone.
	if err := imapLogin(strings.ReplaceAll(secret, "-", "")); err != nil {
		t.Fatalf("IMAP LOGIN with the app password without dashes: %v", err)
	}
	if got := smtpLogin(secret); got != "ok" {
		t.Fatalf("SMTP AUTH with the app password: %s", got)
	}
	if err := imapLogin(pass); err != nil {
		t.Fatalf("IMAP LOGIN with the account password: %v", err)
	}
	waitCount(t, s, user, pass, 1)
	list := s.Admin(t, "", "user", "app-password", "list", user)
	if !regexp.MustCompile(`(?m)^1 +\S+ +\d{4}-\d\d-\d\dT\S+ +127\.0\.0\.1 +Pat's phone$`).MatchString(list) {
		t.Fatalf("app password list does not show the last use from 127.0.0.1:\n%s", list)
	}

	s.Admin(t, "", "user", "app-password", "revoke", user, "1")
	err := imapLogin(secret)
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("IMAP LOGIN with the revoked app password = %v, want NO [AUTHENTICATIONFAILED]", err)
	}
	if got := smtpLogin(secret); !strings.HasPrefix(got, "error 535 5.7.8") {
		t.Fatalf("SMTP AUTH with the revoked app password: %s, want 535 5.7.8", got)
	}
	if err := imapLogin(pass); err != nil {
		t.Fatalf("IMAP LOGIN with the account password after revoke: %v", err)
	}
	if strings.Contains(s.Log(), secret) || strings.Contains(s.Log(), strings.ReplaceAll(secret, "-", "")) {
		t.Fatal("the app password is in the server log")
	}
}
