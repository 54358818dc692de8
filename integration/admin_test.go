package integration

import (
	"bufio"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"
)

// adminCase is one `posthouse admin` run and what it must do.
type adminCase struct {
	name   string
	stdin  string
	args   []string
	code   int
	stdout string // substring of stdout
	stderr string // substring of stderr
}

func runAdminCases(t *testing.T, s *Server, cases []adminCase) {
	t.Helper()
	for _, tc := range cases {
		r := s.RunAdmin(t, tc.stdin, tc.args...)
		if r.Code != tc.code || !strings.Contains(r.Stdout, tc.stdout) || !strings.Contains(r.Stderr, tc.stderr) {
			t.Errorf("%s: admin %s: exit %d (want %d)\nstdout: %q (want %q)\nstderr: %q (want %q)",
				tc.name, strings.Join(tc.args, " "), r.Code, tc.code, r.Stdout, tc.stdout, r.Stderr, tc.stderr)
		}
		if tc.code != 0 && strings.Count(r.Stderr, "\n") != 1 {
			t.Errorf("%s: error is not one line: %q", tc.name, r.Stderr)
		}
	}
}

// TestAdmin runs every admin command against a running server, with the
// error cases and their exit codes.
func TestAdmin(t *testing.T) {
	s := startServer(t, "")
	runAdminCases(t, s, []adminCase{
		{name: "add domain", args: []string{"domain", "add", "example.com"}, stdout: "added domain example.com"},
		{name: "add second domain", args: []string{"domain", "add", "Example.ORG"}},
		{name: "duplicate domain", args: []string{"domain", "add", "example.com"}, code: 4, stderr: "already exists"},
		{name: "invalid domain", args: []string{"domain", "add", "exa mple.com"}, code: 2, stderr: "invalid domain"},
		{name: "list domains", args: []string{"domain", "list"}, stdout: "DOMAIN"},

		{name: "add user", stdin: "s3cret pass\n", args: []string{"user", "add", "--password-stdin", "alice@example.com"}, stdout: "added user alice@example.com"},
		{name: "add user flags after address", stdin: "pw-bob\n", args: []string{"user", "add", "Bob@Example.com", "--password-stdin", "--quota", "2GiB"}, stdout: "quota 2GiB"},
		{name: "duplicate user", stdin: "x\n", args: []string{"user", "add", "--password-stdin", "alice@example.com"}, code: 4, stderr: "already exists"},
		{name: "unknown domain", stdin: "x\n", args: []string{"user", "add", "--password-stdin", "carol@unknown.example"}, code: 3, stderr: "no such domain"},
		{name: "invalid address", stdin: "x\n", args: []string{"user", "add", "--password-stdin", "not-an-address"}, code: 2, stderr: "invalid address"},
		{name: "empty password", stdin: "\n", args: []string{"user", "add", "--password-stdin", "carol@example.com"}, code: 2, stderr: "empty password"},
		{name: "no password on stdin", args: []string{"user", "add", "--password-stdin", "carol@example.com"}, code: 2, stderr: "empty password"},
		{name: "password never from argv", args: []string{"user", "add", "carol@example.com", "hunter2"}, code: 2, stderr: "unexpected argument"},
		{name: "no terminal for the prompt", args: []string{"user", "add", "carol@example.com"}, code: 2, stderr: "--password-stdin"},
		{name: "bad quota", stdin: "x\n", args: []string{"user", "add", "--password-stdin", "--quota", "lots", "carol@example.com"}, code: 2, stderr: "bad quota"},

		{name: "set quota", args: []string{"user", "quota", "alice@example.com", "500MiB"}, stdout: "500MiB"},
		{name: "set message quota", args: []string{"user", "quota", "--messages", "10000", "alice@example.com"}, stdout: "message quota of alice@example.com is 10000 messages"},
		{name: "bad message quota", args: []string{"user", "quota", "alice@example.com", "--messages", "many"}, code: 2, stderr: "bad message quota"},
		{name: "quota without a limit", args: []string{"user", "quota", "alice@example.com"}, code: 2, stderr: "missing SIZE or --messages"},
		{name: "quota of unknown user", args: []string{"user", "quota", "nobody@example.com", "1GiB"}, code: 3, stderr: "no such user"},
		{name: "disable", args: []string{"user", "disable", "bob@example.com"}, stdout: "disabled user bob@example.com"},
		{name: "passwd", stdin: "new-pass\n", args: []string{"user", "passwd", "--password-stdin", "alice@example.com"}, stdout: "password changed"},
		{name: "passwd unknown user", stdin: "x\n", args: []string{"user", "passwd", "--password-stdin", "nobody@example.com"}, code: 3, stderr: "no such user"},
		{name: "passwd empty", stdin: "\n", args: []string{"user", "passwd", "--password-stdin", "alice@example.com"}, code: 2, stderr: "empty password"},

		{name: "add alias", args: []string{"alias", "add", "info@example.com", "alice@example.com", "bob@example.com"}, stdout: "added alias info@example.com"},
		{name: "add catch-all", args: []string{"alias", "add", "@example.org", "alice@example.com,someone@elsewhere.example"}},
		{name: "duplicate alias", args: []string{"alias", "add", "info@example.com", "alice@example.com"}, code: 4, stderr: "already exists"},
		{name: "alias to unknown local user", args: []string{"alias", "add", "sales@example.com", "nobody@example.com"}, code: 3, stderr: "no such user"},
		{name: "alias in unknown domain", args: []string{"alias", "add", "x@unknown.example", "alice@example.com"}, code: 3, stderr: "no such domain"},
		{name: "alias without target", args: []string{"alias", "add", "x@example.com"}, code: 2, stderr: "missing"},
	})

	users := s.Admin(t, "", "user", "list")
	want := [][]string{
		{"ADDRESS", "QUOTA", "STATUS", "CREATED"},
		{"alice@example.com", "500MiB", "active"},
		{"bob@example.com", "2GiB", "disabled"},
	}
	checkTable(t, users, want)
	checkTable(t, s.Admin(t, "", "user", "list", "example.org"), [][]string{{"ADDRESS", "QUOTA", "STATUS", "CREATED"}})
	checkTable(t, s.Admin(t, "", "domain", "list"), [][]string{{"DOMAIN", "CREATED"}, {"example.com"}, {"example.org"}})
	checkTable(t, s.Admin(t, "", "alias", "list"), [][]string{
		{"ALIAS", "TARGETS"},
		{"@example.org", "alice@example.com,someone@elsewhere.example"},
		{"info@example.com", "alice@example.com,bob@example.com"},
	})

	runAdminCases(t, s, []adminCase{
		{name: "enable", args: []string{"user", "enable", "bob@example.com"}, stdout: "enabled user bob@example.com"},
		{name: "remove alias", args: []string{"alias", "remove", "info@example.com"}, stdout: "removed alias"},
		{name: "remove missing alias", args: []string{"alias", "remove", "info@example.com"}, code: 3, stderr: "no such alias"},
		{name: "remove domain with users", args: []string{"domain", "remove", "example.com"}, code: 5, stderr: "--force"},
		{name: "remove unknown domain", args: []string{"domain", "remove", "unknown.example"}, code: 3, stderr: "no such domain"},
		{name: "remove empty domain", args: []string{"alias", "remove", "@example.org"}},
		{name: "remove empty domain 2", args: []string{"domain", "remove", "example.org"}, stdout: "removed domain example.org"},
		{name: "remove user", args: []string{"user", "remove", "bob@example.com"}, stdout: "removed user bob@example.com"},
		{name: "remove user again", args: []string{"user", "remove", "bob@example.com"}, code: 3, stderr: "no such user"},
		{name: "force remove domain", args: []string{"domain", "remove", "--force", "example.com"}, stdout: "1 user(s)"},
	})
	checkTable(t, s.Admin(t, "", "user", "list"), [][]string{{"ADDRESS", "QUOTA", "STATUS", "CREATED"}})
	checkTable(t, s.Admin(t, "", "domain", "list"), [][]string{{"DOMAIN", "CREATED"}})
}

// checkTable compares admin list output with rows of expected leading
// cells (whitespace-separated columns).
func checkTable(t *testing.T, out string, want [][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Errorf("table has %d lines, want %d:\n%s", len(lines), len(want), out)
		return
	}
	for i, w := range want {
		cells := strings.Fields(lines[i])
		if len(cells) < len(w) {
			t.Errorf("line %d %q: want cells %q", i, lines[i], w)
			continue
		}
		for j := range w {
			if cells[j] != w[j] {
				t.Errorf("line %d %q: cell %d is %q, want %q", i, lines[i], j, cells[j], w[j])
			}
		}
	}
}

// TestAdminWhileServing: changes made by admin reach the running server at
// once: a new user can log in, a new password replaces the old, a disabled
// user cannot log in, a removed user's mail is gone (or kept with
// --keep-mail).
func TestAdminWhileServing(t *testing.T) {
	s := startServer(t, "")
	s.AddUser(t, "dora@example.net", "first-pass")
	s.AddUser(t, "eve@example.net", "eve-pass")

	if n, err := pop3Count(s.Addr("pop3"), "dora@example.net", "first-pass"); err != nil || n != 0 {
		t.Fatalf("new user's POP3 login: %d messages, %v", n, err)
	}
	s.Admin(t, "second-pass\n", "user", "passwd", "--password-stdin", "dora@example.net")
	if _, err := pop3Count(s.Addr("pop3"), "dora@example.net", "first-pass"); err == nil {
		t.Error("old password still works after passwd")
	}
	if _, err := pop3Count(s.Addr("pop3"), "dora@example.net", "second-pass"); err != nil {
		t.Errorf("new password refused: %v", err)
	}
	s.Admin(t, "", "user", "disable", "dora@example.net")
	if _, err := pop3Count(s.Addr("pop3"), "dora@example.net", "second-pass"); err == nil {
		t.Error("disabled user can log in")
	}
	s.Admin(t, "", "user", "enable", "dora@example.net")

	// One message each, then remove both users, one with --keep-mail, and
	// add them again: only the kept mail is still there.
	for _, rcpt := range []string{"dora@example.net", "eve@example.net"} {
		if err := smtpDeliver(s.Addr("smtp"), "sender@remote.example", rcpt); err != nil {
			t.Fatalf("deliver to %s: %v", rcpt, err)
		}
	}
	waitCount(t, s, "dora@example.net", "second-pass", 1)
	waitCount(t, s, "eve@example.net", "eve-pass", 1)
	s.Admin(t, "", "user", "remove", "dora@example.net")
	s.Admin(t, "", "user", "remove", "--keep-mail", "eve@example.net")
	if _, err := pop3Count(s.Addr("pop3"), "dora@example.net", "second-pass"); err == nil {
		t.Error("removed user can still log in")
	}
	s.AddUser(t, "dora@example.net", "third-pass")
	s.AddUser(t, "eve@example.net", "eve-pass")
	if n, err := pop3Count(s.Addr("pop3"), "dora@example.net", "third-pass"); err != nil || n != 0 {
		t.Errorf("re-added dora sees %d messages (%v), want 0: user remove must remove the mail", n, err)
	}
	if n, err := pop3Count(s.Addr("pop3"), "eve@example.net", "eve-pass"); err != nil || n != 1 {
		t.Errorf("re-added eve sees %d messages (%v), want 1: --keep-mail must keep it", n, err)
	}
}

func waitCount(t *testing.T, s *Server, user, pass string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := pop3Count(s.Addr("pop3"), user, pass)
		if err == nil && n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d messages (%v), want %d", user, n, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// smtpDeliver sends one small message on the MTA port (no TLS, no AUTH).
func smtpDeliver(addr, from, to string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClient(conn, "127.0.0.1")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: <%s>\r\nTo: <%s>\r\nSubject: admin test\r\nMessage-ID: <%d@client.example>\r\n\r\nHello.\r\n", from, to, time.Now().UnixNano())
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// pop3Count logs in with USER/PASS (plain text is allowed on loopback) and
// returns the STAT message count.
func pop3Count(addr, user, pass string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	cmd := func(line string) (string, error) {
		if line != "" {
			if _, err := fmt.Fprintf(conn, "%s\r\n", line); err != nil {
				return "", err
			}
		}
		resp, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(resp, "+OK") {
			return resp, fmt.Errorf("%q: %s", strings.Fields(line + " x")[0], strings.TrimSpace(resp))
		}
		return resp, nil
	}
	if _, err := cmd(""); err != nil {
		return 0, err
	}
	if _, err := cmd("USER " + user); err != nil {
		return 0, err
	}
	if _, err := cmd("PASS " + pass); err != nil {
		return 0, err
	}
	resp, err := cmd("STAT")
	if err != nil {
		return 0, err
	}
	var n, size int
	if _, err := fmt.Sscanf(resp, "+OK %d %d", &n, &size); err != nil {
		return 0, fmt.Errorf("STAT reply %q", resp)
	}
	cmd("QUIT")
	return n, nil
}

// ptyScript runs a command on a pseudo-terminal, answers each prompt in
// turn, and prints everything the terminal showed; it exits with the
// command's status.
const ptyScript = `
import os, pty, select, sys, time
argv, answers = sys.argv[1:sys.argv.index("--")], sys.argv[sys.argv.index("--")+1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out = b""
def read_until(pat):
    global out
    end = time.time() + 30
    while pat not in out:
        r, _, _ = select.select([fd], [], [], max(0, end - time.time()))
        if not r:
            sys.stdout.write(out.decode(errors="replace")); sys.exit(100)
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            chunk = b""
        if not chunk:
            return
        out += chunk
for prompt, answer in zip(answers[::2], answers[1::2]):
    read_until(prompt.encode())
    os.write(fd, answer.encode() + b"\n")
read_until(b"\x00never")
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
`

// TestAdminPasswordPrompt: without --password-stdin the password is asked
// twice on the terminal, without echo.
func TestAdminPasswordPrompt(t *testing.T) {
	python := needTool(t, "python3")
	s := startServer(t, "")
	s.Admin(t, "", "domain", "add", "example.com")
	tty := func(answers ...string) (string, int) {
		args := []string{"-c", ptyScript, binary, "admin", "--config", s.ConfigPath}
		return runPTY(t, python, args, answers)
	}

	out, code := tty("user", "add", "fay@example.com", "--", "Password for fay@example.com:", "tty-secret-1", "Again:", "tty-secret-1")
	if code != 0 || !strings.Contains(out, "added user fay@example.com") {
		t.Fatalf("prompted user add: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "tty-secret-1") {
		t.Errorf("the password was echoed:\n%s", out)
	}
	if _, err := pop3Count(s.Addr("pop3"), "fay@example.com", "tty-secret-1"); err != nil {
		t.Errorf("login with the prompted password: %v", err)
	}

	out, code = tty("user", "passwd", "fay@example.com", "--", "New password for fay@example.com:", "one", "Again:", "two")
	if code != 2 || !strings.Contains(out, "do not match") {
		t.Errorf("mismatched passwords: exit %d\n%s", code, out)
	}
	out, code = tty("user", "passwd", "fay@example.com", "--", "New password for fay@example.com:", "")
	if code != 2 || !strings.Contains(out, "empty password") {
		t.Errorf("empty prompted password: exit %d\n%s", code, out)
	}
	if _, err := pop3Count(s.Addr("pop3"), "fay@example.com", "tty-secret-1"); err != nil {
		t.Errorf("failed passwd attempts changed the password: %v", err)
	}
}

// runPTY runs the python pty script: args up to the command, then "--"
// and prompt/answer pairs.
func runPTY(t *testing.T, python string, args, rest []string) (string, int) {
	t.Helper()
	// rest is the admin arguments, "--", then prompt/answer pairs.
	i := 0
	for i < len(rest) && rest[i] != "--" {
		i++
	}
	full := append(append(append([]string{}, args...), rest[:i]...), rest[i:]...)
	r := runCommand(t, python, full...)
	if r.Code == 100 {
		t.Fatalf("pty script timed out waiting for a prompt; terminal showed:\n%s", r.Stdout)
	}
	return r.Stdout, r.Code
}
