//go:build unix

package integration

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

// TestDataDirIsPrivate: everything serve and admin create under data_dir is
// owner-only (files 0600, directories 0700): the databases with their -wal
// and -shm, Maildir files and directories, the queue's spool, the TLS key
// and certificate. An install from before (world-readable files, no record
// of the one full walk) is fixed at the next start, and files a crash left
// behind (tmp/ deliveries older than a day, smtpd spool files) are removed
// and logged.
func TestDataDirIsPrivate(t *testing.T) {
	s := startServer(t, "")
	s.AddUser(t, "alice@a.test", alicePW)
	s.Admin(t, "", "dkim", "generate", "a.test")
	s.Admin(t, "", "alias", "add", "info@a.test", "alice@a.test")

	// Local delivery through the MTA port, and outbound mail that stays
	// queued (the test resolver fails for b.test).
	s.DNS.SetRcode("b.test", dns.RcodeServerFailure)
	c, err := smtp.Dial(s.Addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		body := fmt.Sprintf("From: <sender@remote.test>\r\nTo: <info@a.test>\r\nSubject: private %d\r\n\r\nhello\r\n", i)
		if err := goSend(c, "sender@remote.test", []string{"info@a.test"}, body); err != nil {
			t.Fatal(err)
		}
	}
	c.Quit()
	// Over 64 KiB, so the queue keeps it in a spool file (a smaller one
	// lives in its queue.sqlite row).
	submit(t, s, []string{"bob@b.test"}, "From: <alice@a.test>\r\nTo: <bob@b.test>\r\nSubject: out\r\n\r\n"+strings.Repeat("queued, and long enough for a spool file\r\n", 2000))

	seen := checkPrivate(t, s.DataDir)
	for _, want := range []string{"users.sqlite", "users.sqlite-wal", "queue.sqlite", "index.sqlite", "index.sqlite-wal", "key.pem", "cert.pem", "message", "queued message"} {
		if !seen[want] {
			t.Errorf("no %s under data_dir (saw %v)", want, seen)
		}
	}

	// An install from before: world-readable everywhere, never walked.
	s.Stop(t)
	filepath.WalkDir(s.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		mode := fs.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	})
	if err := os.Remove(filepath.Join(s.DataDir, ".private-modes")); err != nil {
		t.Fatalf("no record of the first walk: %v", err)
	}
	// Leftovers of a crash: a delivery's tmp/ file from two days ago, one
	// from a minute ago (maybe another process's delivery in progress),
	// and a spool file of smtpd.
	inbox := inboxDir(t, s.DataDir)
	oldTmp := filepath.Join(inbox, "tmp", "1764000000.M1P9Q1R00.crashed")
	freshTmp := filepath.Join(inbox, "tmp", "1764000001.M1P9Q2R00.inprogress")
	spool := filepath.Join(s.DataDir, "spool", "smtpd", "smtpd-42.eml")
	for _, f := range []struct {
		path string
		age  time.Duration
	}{{oldTmp, 48 * time.Hour}, {freshTmp, time.Minute}, {spool, time.Hour}} {
		if err := os.WriteFile(f.path, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-f.age)
		os.Chtimes(f.path, mt, mt)
	}

	s.Restart(t)
	checkPrivate(t, s.DataDir)
	if _, err := os.Stat(oldTmp); !os.IsNotExist(err) {
		t.Errorf("day-old tmp/ file kept: %v", err)
	}
	if _, err := os.Stat(freshTmp); err != nil {
		t.Errorf("young tmp/ file removed: %v", err)
	}
	if _, err := os.Stat(spool); !os.IsNotExist(err) {
		t.Errorf("smtpd spool leftover kept: %v", err)
	}
	log := s.Log()
	for _, want := range []string{"made files under data_dir private", "removed file left by an interrupted write", "removed spool file left by a crash"} {
		if !strings.Contains(log, want) {
			t.Errorf("log has no %q", want)
		}
	}
	if n := strings.Count(log, "removed file left by an interrupted write"); n != 1 {
		t.Errorf("%d tmp/ removals logged, want 1", n)
	}
}

// checkPrivate walks dataDir and reports any file not 0600 or directory
// not 0700; it returns the kinds of files it saw.
func checkPrivate(t *testing.T, dataDir string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dataDir, p)
		want := fs.FileMode(0o600)
		switch {
		case d.IsDir():
			want = 0o700
		case !info.Mode().IsRegular():
			t.Errorf("%s: not a regular file: %v", rel, info.Mode())
			return nil
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", rel, got, want)
		}
		switch base := filepath.Base(p); {
		case strings.Contains(rel, "/cur/"):
			seen["message"] = true
		case strings.HasPrefix(rel, "queue/") && !d.IsDir() && len(base) == 16:
			seen["queued message"] = true
		default:
			seen[base] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seen
}

// inboxDir finds the Maildir of the one mailbox holding messages.
func inboxDir(t *testing.T, dataDir string) string {
	t.Helper()
	curs, _ := filepath.Glob(filepath.Join(dataDir, "accounts", "*", "maildir", "*", "cur"))
	for _, c := range curs {
		if ents, _ := os.ReadDir(c); len(ents) > 0 {
			return filepath.Dir(c)
		}
	}
	t.Fatalf("no mailbox with messages among %v", curs)
	return ""
}
