package integration

// Fault tests: the server under a full disk (and, in later files, other
// faults) degrades with precise replies and loses nothing it acknowledged.
// Each ends with the same check: every message acknowledged before or
// during the fault is stored exactly once, also after a restart, and the
// server answers normally once the fault is gone. Recovery times are
// logged ("recovery:") for the record.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// mountNSEnv marks the test process re-executed in a private mount
// namespace.
const mountNSEnv = "POSTHOUSE_TEST_MOUNT_NS"

// inPrivateMountNS re-runs the calling test in a private mount namespace
// (unshare -m), where it may mount a tmpfs without touching the host's
// mounts. It returns true in that child, which goes on with the test, and
// false in the parent, which has reported the child's result.
func inPrivateMountNS(t *testing.T) bool {
	t.Helper()
	if os.Getenv(mountNSEnv) != "" {
		return true
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare(1) not installed: this test needs a private mount namespace for its tmpfs")
	}
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", os.Args[0],
		"-test.run=^"+t.Name()+"$", "-test.v", "-test.timeout=5m", "-test.count=1")
	cmd.Env = append(os.Environ(), mountNSEnv+"=1", binaryEnv+"="+binary)
	out, err := cmd.CombinedOutput()
	text := string(out)
	switch {
	case err != nil && strings.Contains(text, "unshare failed"):
		t.Skipf("no private mount namespace here (unshare -m not permitted; .ci/run runs as root): %s", strings.TrimSpace(text))
	case strings.Contains(text, "--- SKIP"):
		t.Skipf("skipped in the mount namespace:\n%s", text)
	}
	t.Logf("in a private mount namespace:\n%s", text)
	if err != nil {
		fatalf(t, "the test failed in its mount namespace: %v", err)
	}
	return false
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory and returns
// it; the namespace takes it away when the test process ends.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		fatalf(t, "%v", err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): needs root in a private mount namespace", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		fatalf(t, "%v", err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// fillTo writes a file in dir until at most free bytes are left; want 0
// writes until ENOSPC.
func fillTo(t *testing.T, dir, name string, free int64) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		fatalf(t, "%v", err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		left := freeBytes(t, dir) - free
		if left <= 0 {
			return
		}
		n := min(int64(len(chunk)), left)
		if free == 0 {
			n = int64(len(chunk))
		}
		if _, err := f.Write(chunk[:n]); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			fatalf(t, "%v", err)
		}
	}
}

// smtpCode asserts that err is an SMTP reply with code and enhanced code.
func smtpCode(t *testing.T, what string, err error, code int, enh smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != code || se.EnhancedCode != enh {
		fatalf(t, "%s: %v, want %d %d.%d.%d", what, err, code, enh[0], enh[1], enh[2])
	}
}

var noSpace = smtp.EnhancedCode{4, 3, 1}

// faultMessage is a message whose Subject names it.
func faultMessage(subject string, size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender@remote.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@remote.test>\r\n\r\n", faultUser, subject, subject)
	for b.Len() < size {
		b.WriteString("The quick brown fox jumps over the lazy dog. 0123456789\r\n")
	}
	return b.String()
}

const (
	faultUser = "dee@example.org"
	faultPass = "dee-faults-secret"
)

// sendTo delivers one message to faultUser on port 25; nil when the
// server acknowledged it with 250.
func sendTo(s *Server, subject string, size int) error {
	c, err := smtp.Dial(s.Addr("smtp"))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		return err
	}
	return goSend(c, "sender@remote.test", []string{faultUser}, faultMessage(subject, size))
}

// imapSession is a plain-text IMAP client for the edge cases: APPEND's
// exact reply, STORE/EXPUNGE by sequence number, subjects by FETCH.
type imapSession struct {
	t   *testing.T
	c   net.Conn
	r   *bufio.Reader
	tag int
}

func dialIMAPSession(t *testing.T, s *Server) *imapSession {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr("imap"))
	if err != nil {
		fatalf(t, "%v", err)
	}
	t.Cleanup(func() { c.Close() })
	is := &imapSession{t: t, c: c, r: bufio.NewReader(c)}
	is.line()
	is.ok("LOGIN %s %s", faultUser, faultPass)
	return is
}

var imapLiteral = regexp.MustCompile(`\{(\d+)\}$`)

func (is *imapSession) line() string {
	is.t.Helper()
	is.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	l, err := is.r.ReadString('\n')
	if err != nil {
		fatalf(is.t, "IMAP read: %v", err)
	}
	l = strings.TrimRight(l, "\r\n")
	if m := imapLiteral.FindStringSubmatch(l); m != nil {
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(is.r, buf); err != nil {
			fatalf(is.t, "IMAP literal: %v", err)
		}
		l += "\r\n" + string(buf) + is.line()
	}
	return l
}

// cmd sends a command and returns the untagged lines and the completion
// (without the tag).
func (is *imapSession) cmd(format string, args ...any) ([]string, string) {
	is.t.Helper()
	is.tag++
	tag := fmt.Sprintf("F%d", is.tag)
	fmt.Fprintf(is.c, "%s %s\r\n", tag, fmt.Sprintf(format, args...))
	var untagged []string
	for {
		l := is.line()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, l)
	}
}

func (is *imapSession) ok(format string, args ...any) []string {
	is.t.Helper()
	u, done := is.cmd(format, args...)
	if !strings.HasPrefix(done, "OK") {
		fatalf(is.t, "%s: %s", strings.Fields(format)[0], done)
	}
	return u
}

var subjectLine = regexp.MustCompile(`(?m)^Subject: (\S+)\r?$`)

// subjects lists the Subject of each message in the selected mailbox, in
// order (set: "1:*", "1:10").
func (is *imapSession) subjects(set string) []string {
	is.t.Helper()
	var out []string
	for _, l := range is.ok("FETCH %s (BODY.PEEK[HEADER.FIELDS (SUBJECT)])", set) {
		if m := subjectLine.FindStringSubmatch(l); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// checkExactlyOnce: INBOX holds each subject of want exactly once and
// nothing else.
func checkExactlyOnce(t *testing.T, s *Server, want map[string]bool) {
	t.Helper()
	is := dialIMAPSession(t, s)
	is.ok("SELECT INBOX")
	seen := map[string]int{}
	for _, subj := range is.subjects("1:*") {
		seen[subj]++
	}
	for subj := range want {
		if seen[subj] != 1 {
			errorf(t, "acknowledged message %s stored %d times", subj, seen[subj])
		}
	}
	for subj, n := range seen {
		if !want[subj] {
			errorf(t, "message %s stored %d times but never acknowledged (or expunged)", subj, n)
		}
	}
	is.ok("LOGOUT")
}

// TestDiskFull fills data_dir's file system (a tmpfs in a private mount
// namespace) past [limits] min_free_space, then to the last byte, and
// checks that the server refuses new mail with 452 4.3.1 and APPEND NO
// [OVERQUOTA], keeps reading, expunging and delivering its queue, says so
// in admin status, and takes mail again when space is back.
func TestDiskFull(t *testing.T) {
	if !inPrivateMountNS(t) {
		return
	}
	root := mountTmpfs(t, 64<<20)
	const reserve = 16 << 20
	f := startFakeReceiver(t, &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted"})
	dataDir := filepath.Join(root, "data")
	s := startServer(t, fmt.Sprintf("data_dir = %q\n[limits]\nmin_free_space = \"16MiB\"\n[queue]\nremote_port = %s\n", dataDir, f.port))
	s.DataDir = dataDir
	s.DNS.Add("b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	s.AddUser(t, faultUser, faultPass)

	acked := map[string]bool{}
	for i := range 20 {
		subj := fmt.Sprintf("before-%02d", i)
		if err := sendTo(s, subj, 64<<10); err != nil {
			fatalf(t, "%s: %v", subj, err)
		}
		acked[subj] = true
	}
	// Mail for the queue, deferred once by the remote.
	sub, err := smtp.DialTLS(s.Addr("submissions"), s.clientTLS())
	if err != nil {
		fatalf(t, "%v", err)
	}
	defer sub.Close()
	if err := sub.Auth(sasl.NewPlainClient("", faultUser, faultPass)); err != nil {
		fatalf(t, "%v", err)
	}
	if err := goSend(sub, faultUser, []string{"bob@b.test"}, "From: "+faultUser+"\r\nSubject: outbound\r\n\r\nqueued before the disk filled\r\n"); err != nil {
		fatalf(t, "%v", err)
	}
	waitUntil(t, 20*time.Second, "the deferred first attempt", func() bool { return f.rcptCount() >= 1 })

	// Two transactions open before the disk fills: one to be refused at
	// RCPT, one to meet the full disk in DATA.
	open := func() *smtp.Client {
		c, err := smtp.Dial(s.Addr("smtp"))
		if err != nil {
			fatalf(t, "%v", err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Hello("client.example"); err != nil {
			fatalf(t, "%v", err)
		}
		if err := c.Mail("sender@remote.test", nil); err != nil {
			fatalf(t, "%v", err)
		}
		return c
	}
	atRcpt, atData := open(), open()
	if err := atData.Rcpt(faultUser, nil); err != nil {
		fatalf(t, "%v", err)
	}

	// Below the reserve.
	fillTo(t, root, "filler", reserve/2)
	filled := time.Now()
	waitUntil(t, 10*time.Second, "452 4.3.1 at MAIL", func() bool {
		c, err := smtp.Dial(s.Addr("smtp"))
		if err != nil {
			return false
		}
		defer c.Close()
		c.Hello("client.example")
		err = c.Mail("sender@remote.test", nil)
		var se *smtp.SMTPError
		return errors.As(err, &se) && se.Code == 452
	})
	t.Logf("recovery: MAIL refused %s after free space fell below the reserve", time.Since(filled).Round(time.Millisecond))
	smtpCode(t, "RCPT below the reserve", atRcpt.Rcpt(faultUser, nil), 452, noSpace)
	smtpCode(t, "MAIL on submission below the reserve", sub.Mail(faultUser, nil), 452, noSpace)
	if status := s.Admin(t, "", "status"); !strings.Contains(status, "LOW") {
		errorf(t, "admin status does not show the low disk:\n%s", status)
	}

	is := dialIMAPSession(t, s)
	if _, done := is.cmd("APPEND INBOX {5+}\r\nx\r\n\r\n"); !strings.HasPrefix(done, "NO [OVERQUOTA]") {
		fatalf(t, "APPEND below the reserve: %s", done)
	}
	// Reading (POP3 and IMAP), flags and expunge go on, and free space.
	p := dialPOP3(t, s, "pop3")
	p.cmd("USER "+faultUser, "+OK")
	p.cmd("PASS "+faultPass, "+OK")
	p.cmd("RETR 1", "+OK")
	if body := p.multi(); !strings.Contains(string(body), "Subject: before-00") {
		errorf(t, "RETR 1 below the reserve: %.200q", body)
	}
	p.cmd("QUIT", "+OK")
	is.ok("SELECT INBOX")
	gone := is.subjects("1:10")
	freeBefore := freeBytes(t, root)
	is.ok(`STORE 1:10 +FLAGS (\Deleted)`)
	is.ok("EXPUNGE")
	for _, subj := range gone {
		delete(acked, subj)
	}
	// The files go just after EXPUNGE's answer (the store's unlinker).
	waitUntil(t, 10*time.Second, "space freed by expunging 10 messages", func() bool { return freeBytes(t, root) > freeBefore })
	is.ok(`STORE 1 +FLAGS (\Seen)`)
	moved := is.subjects("2")
	is.ok("MOVE 2 Archive")
	// The queue keeps delivering what it holds.
	s.Admin(t, "", "queue", "retry", "all")
	waitUntil(t, 20*time.Second, "queued delivery below the reserve", func() bool { return f.count() == 1 })

	// The disk fills to the last byte anyway: 452 4.3.1, not 451 4.3.0.
	fillTo(t, root, "filler2", 0)
	w, err := atData.Data()
	if err != nil {
		fatalf(t, "%v", err)
	}
	w.Write([]byte(faultMessage("never", 1<<20)))
	smtpCode(t, "DATA on a full disk", w.Close(), 452, noSpace)

	// Space comes back.
	os.Remove(filepath.Join(root, "filler2"))
	os.Remove(filepath.Join(root, "filler"))
	freed := time.Now()
	waitUntil(t, 10*time.Second, "mail accepted again", func() bool { return sendTo(s, "after-00", 64<<10) == nil })
	t.Logf("recovery: mail accepted %s after space was freed", time.Since(freed).Round(time.Millisecond))
	acked["after-00"] = true
	for i := 1; i < 5; i++ {
		subj := fmt.Sprintf("after-%02d", i)
		if err := sendTo(s, subj, 64<<10); err != nil {
			fatalf(t, "%s: %v", subj, err)
		}
		acked[subj] = true
	}
	appended := "Subject: appended\r\n\r\nx\r\n"
	is.ok("APPEND INBOX {%d+}\r\n%s", len(appended), appended)
	acked["appended"] = true
	is.ok("LOGOUT")

	log := s.Log()
	for _, want := range []string{"free disk space below the reserve", "free disk space back above the reserve"} {
		if !strings.Contains(log, want) {
			errorf(t, "log lacks %q", want)
		}
	}
	// Archive holds the moved message; INBOX the rest, each once.
	delete(acked, moved[0])
	checkExactlyOnce(t, s, acked)
	s.Stop(t)
	s.Restart(t)
	checkExactlyOnce(t, s, acked)
}
