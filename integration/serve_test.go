package integration

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeWithoutConfigFile: `posthouse serve` with no file, in an empty
// directory, runs on the built-in defaults (environment overrides only move
// the listeners to free loopback ports): data under ./data, a self-signed
// certificate made and then reused, every listener bound, clean exit.
func TestServeWithoutConfigFile(t *testing.T) {
	dir := t.TempDir()
	s := &Server{
		Dir:      dir,
		DataDir:  filepath.Join(dir, "data"),
		Hostname: TestHostname,
		logPath:  filepath.Join(dir, "server.log"),
		addrs:    map[string]string{},
	}
	s.env = append(cleanEnv(), "POSTHOUSE_HOSTNAME="+TestHostname, "POSTHOUSE_DNS_RESOLVER="+unusedUDPAddr(t))
	for _, name := range listenerNames {
		s.addrs[name] = freeTCPAddr(t)
		s.env = append(s.env, "POSTHOUSE_LISTEN_"+strings.ToUpper(name)+"="+s.addrs[name])
	}
	s.serveArgs = []string{"serve"}
	s.start(t)
	s.stopOnCleanup(t)

	for _, f := range []string{"users.sqlite", "accounts", "tls/cert.pem", "tls/key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, "data", f)); err != nil {
			t.Errorf("./data/%s: %v", f, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "data", "tls", "key.pem")); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem mode %v, want 0600", fi.Mode().Perm())
	}
	// The implicit-TLS listeners present the certificate, valid for the
	// hostname, with no session tickets.
	for _, name := range []string{"imaps", "pop3s", "submissions"} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.Addr(name),
			&tls.Config{RootCAs: s.CACertPool(), ServerName: TestHostname})
		if err != nil {
			t.Errorf("%s: TLS handshake: %v", name, err)
			continue
		}
		st := conn.ConnectionState()
		if st.Version < tls.VersionTLS12 {
			t.Errorf("%s: TLS version %x", name, st.Version)
		}
		conn.Close()
	}
	cert1, _ := os.ReadFile(filepath.Join(dir, "data", "tls", "cert.pem"))

	s.Stop(t)
	if !strings.Contains(s.Log(), "posthouse stopped") {
		t.Errorf("no clean stop in the log")
	}
	s.Restart(t)
	cert2, _ := os.ReadFile(filepath.Join(dir, "data", "tls", "cert.pem"))
	if len(cert1) == 0 || !bytes.Equal(cert1, cert2) {
		t.Error("the self-signed certificate was not reused on restart")
	}
}

// TestServePortInUse: a port that cannot be bound stops the start with one
// clear line and a non-zero exit.
func TestServePortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "hostname = %q\ndata_dir = %q\n[dns]\nresolver = %q\n[listen]\n", TestHostname, filepath.Join(dir, "data"), unusedUDPAddr(t))
	for _, name := range listenerNames {
		addr := freeTCPAddr(t)
		if name == "imap" {
			addr = busy.Addr().String()
		}
		fmt.Fprintf(&cfg, "%s = %q\n", name, addr)
	}
	path := filepath.Join(dir, "p.toml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runPosthouse(t, dir, cleanEnv(), "", "serve", "--config", path)
	lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if r.Code == 0 || !strings.HasPrefix(last, "posthouse: ") || !strings.Contains(last, "address already in use") ||
		!strings.Contains(last, busy.Addr().String()) {
		t.Errorf("exit %d, last line %q; want a one-line bind error naming %s", r.Code, last, busy.Addr())
	}
}

// TestGracefulShutdown: on SIGTERM the server stops accepting at once, lets
// an SMTP transaction in progress finish (its message is kept), and exits 0.
func TestGracefulShutdown(t *testing.T) {
	s := startServer(t, "")
	s.AddUser(t, "gina@example.com", "pw")

	conn, err := net.DialTimeout("tcp", s.Addr("smtp"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	c, err := smtp.NewClient(conn, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("someone@remote.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("gina@example.com"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "From: <someone@remote.example>\r\nTo: <gina@example.com>\r\nSubject: in flight\r\n\r\nfirst half\r\n")

	// An idle IMAP session is open too; the server must not wait for it
	// beyond the grace period.
	idle, err := net.Dial("tcp", s.Addr("imap"))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	bufio.NewReader(idle).ReadString('\n')

	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Phase one: listeners close at once.
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", s.Addr("smtp"), time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("smtp listener still accepts 5s after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The transaction in progress completes.
	fmt.Fprintf(w, "second half\r\n")
	if err := w.Close(); err != nil {
		t.Errorf("DATA in flight at SIGTERM was not accepted: %v", err)
	}
	c.Quit()

	werr, exited := s.Wait(20 * time.Second)
	if !exited {
		t.Fatal("server still running 20s after SIGTERM")
	}
	if werr != nil {
		t.Fatalf("exit after SIGTERM: %v", werr)
	}
	s.Restart(t)
	if n, err := pop3Count(s.Addr("pop3"), "gina@example.com", "pw"); err != nil || n != 1 {
		t.Errorf("after restart gina has %d messages (%v), want the one accepted during shutdown", n, err)
	}
}

// TestCheckConfigCommand: check-config explains a bad file with file:line
// and a hint, and prints the effective configuration of a good one,
// environment overrides included.
func TestCheckConfigCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(good, []byte("hostname = \"mx.example.com\"\n[listen]\nsmtp = \":2525\"\n"), 0o644)
	os.WriteFile(bad, []byte("hostname = \"mx.example.com\"\n\n[limits]\nmax_message_size = \"big\"\nmax_recipients = 0\n"), 0o644)

	r := runPosthouse(t, dir, append(cleanEnv(), "POSTHOUSE_LIMITS_MAX_RECIPIENTS=7"), "", "check-config", "--config", good)
	if r.Code != 0 || !strings.Contains(r.Stdout, "smtp = ':2525'") || !strings.Contains(r.Stdout, "max_recipients = 7") ||
		!strings.Contains(r.Stdout, "hostname = 'mx.example.com'") {
		t.Errorf("good config: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = runPosthouse(t, dir, cleanEnv(), "", "check-config", "--config", bad)
	if r.Code == 0 || !strings.Contains(r.Stderr, bad+":4: limits.max_message_size: bad size") ||
		!strings.Contains(r.Stderr, "hint:") {
		t.Errorf("bad config: exit %d\n%s", r.Code, r.Stderr)
	}
	r = runPosthouse(t, dir, append(cleanEnv(), "POSTHOUSE_LISTEN_SMPT=:25"), "", "check-config", "--config", good)
	if r.Code == 0 || !strings.Contains(r.Stderr, "POSTHOUSE_LISTEN_SMPT") || !strings.Contains(r.Stderr, "did you mean POSTHOUSE_LISTEN_SMTP") {
		t.Errorf("unknown variable: exit %d\n%s", r.Code, r.Stderr)
	}
	// serve refuses the same bad file before doing anything.
	r = runPosthouse(t, dir, cleanEnv(), "", "serve", "--config", bad)
	if r.Code == 0 || !strings.Contains(r.Stderr, bad+":4:") {
		t.Errorf("serve with a bad config: exit %d\n%s", r.Code, r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("serve created data before validating its config")
	}
}

// TestVersionCommand: the version comes from -ldflags (TestMain sets it
// as a release build does).
func TestVersionCommand(t *testing.T) {
	r := runPosthouse(t, t.TempDir(), cleanEnv(), "", "version")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "posthouse "+testVersion+" (go") {
		t.Errorf("version: exit %d %q, want posthouse %s", r.Code, r.Stdout, testVersion)
	}
	r = runPosthouse(t, t.TempDir(), cleanEnv(), "", "--version")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "posthouse "+testVersion) {
		t.Errorf("--version: exit %d %q", r.Code, r.Stdout)
	}
}
