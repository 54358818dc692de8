package integration

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestManageSieveFilters: a user uploads and activates a script with
// sieve-connect over ManageSieve (STARTTLS, verified against the server's
// self-signed certificate, then PLAIN), posthouse admin sees it, and the
// next message over SMTP is filed as the script says.
func TestManageSieveFilters(t *testing.T) {
	bin, err := exec.LookPath("sieve-connect")
	if err != nil {
		t.Skip("sieve-connect not installed (Debian package sieve-connect; .ci/run installs it)")
	}
	s := startServer(t, "[imap]\nloopback_is_secure = false\n")
	s.AddUser(t, imapUser, imapPass)
	dir := t.TempDir()
	script := filepath.Join(dir, "rules.sieve")
	os.WriteFile(script, []byte("require [\"fileinto\", \"mailbox\"];\nif header :contains \"subject\" \"report\" { fileinto :create \"Reports\"; }\n"), 0o600)
	host, port, _ := net.SplitHostPort(s.Addr("managesieve"))
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		pw.WriteString(imapPass + "\n")
		pw.Close()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--server", host, "--port", port, "--user", imapUser,
			"--passwordfd", "3", "--tlscafile", filepath.Join(s.DataDir, "tls", "cert.pem"), "--tlshostname", TestHostname,
			"--noclearauth"}, args...)...)
		cmd.ExtraFiles = []*os.File{pr}
		cmd.Env = append(os.Environ(), "HOME="+dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("sieve-connect %q: %v\n%s", args, err, out.String())
		}
	}
	run("--upload", "--localsieve", script, "--remotesieve", "rules")
	run("--activate", "--remotesieve", "rules")
	if out := s.Admin(t, "", "sieve", "list", imapUser); !strings.Contains(out, "rules") {
		t.Fatalf("admin sieve list:\n%s", out)
	}

	body := "From: carol@remote.test\r\nTo: " + imapUser + "\r\nSubject: weekly report\r\nMessage-ID: <wr@remote.test>\r\n\r\nNumbers.\r\n"
	if err := smtpFrom(t, s, "carol@remote.test", imapUser, body); err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{TLSConfig: s.imapTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imapUser, imapPass).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("Reports", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("select Reports: %v", err)
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var subj []string
	for _, m := range msgs {
		subj = append(subj, m.Envelope.Subject)
	}
	if !slices.Equal(subj, []string{"weekly report"}) {
		t.Fatalf("Reports holds %q", subj)
	}
}
