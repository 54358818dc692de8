package integration

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// migrateFolders are the remote folders of TestMigrateFromDovecot: their
// Maildir++ directory, IMAP name, and the Posthouse mailbox they must land
// in (by SPECIAL-USE for Spam and Old Stuff, whose names say nothing).
var migrateFolders = []struct{ dir, remote, local string }{
	{"", "INBOX", "INBOX"},
	{".Sent", "Sent", "Sent"},
	{".Drafts", "Drafts", "Drafts"},
	{".Trash", "Trash", "Trash"},
	{".Spam", "Spam", "Junk"},
	{".Old Stuff", "Old Stuff", "Archive"},
	{".Work", "Work", "Work"},
	{".Work.Clients", "Work.Clients", "Work/Clients"},
	{".Lists", "Lists", "Lists"},
	{".Entw&APw-rfe", "Entwürfe", "Entwürfe"},
}

const (
	migratePerFolder = 500
	remoteUser       = "old@example.org"
	remotePass       = "old-secret"
	migrateUser      = "new@example.com"
)

// fillRemoteMaildir writes the messages straight into Dovecot's Maildir:
// flags (and keyword letters) in the names, internal dates as mtimes.
func fillRemoteMaildir(t *testing.T, maildir string) {
	t.Helper()
	infos := []string{"", "S", "RS", "FS", "DS", "ST", "Sab", "a", "PS"}
	base := time.Date(2016, 2, 3, 4, 5, 6, 0, time.UTC)
	k := 0
	for fi, f := range migrateFolders {
		dir := filepath.Join(maildir, f.dir)
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "dovecot-keywords"), []byte("0 $Label1\n1 Project-X\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for j := range migratePerFolder {
			k++
			var b bytes.Buffer
			fmt.Fprintf(&b, "From: Sender %d <s%d@remote.test>\nTo: %s\nSubject: folder %d message %d\nMessage-ID: <%d.%d@remote.test>\nDate: Wed, 3 Feb 2016 04:05:06 +0000\n\n", j, j, remoteUser, fi, j, fi, j)
			size := 600 + (k*37)%2000
			if j == 7 {
				size = 300 << 10
			}
			if fi == 0 && j == 11 {
				size = 3 << 20 // spooled to a file by the importer
			}
			for b.Len() < size {
				fmt.Fprintf(&b, "line %d of a message body that is long enough to wrap nothing.\n", b.Len())
			}
			name := fmt.Sprintf("%d.M%dP1.remote,S=%d:2,%s", base.Unix()+int64(k), k, b.Len(), infos[k%len(infos)])
			path := filepath.Join(dir, "cur", name)
			if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			date := base.Add(time.Duration(k) * 97 * time.Minute)
			if err := os.Chtimes(path, date, date); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// remoteMessage is a message as an IMAP server shows it.
type remoteMessage struct {
	flags string
	date  string
}

// mailboxContents fetches every message of a mailbox: by a hash of its
// header and its size (of its whole content with full, as for INBOX: the
// race-built server is slow to send 15 MB), the flags and internal date
// of each copy.
func mailboxContents(t *testing.T, c *imapclient.Client, name string, full bool) map[string][]remoteMessage {
	t.Helper()
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("EXAMINE %s: %v", name, err)
	}
	out := map[string][]remoteMessage{}
	if sel.NumMessages == 0 {
		return out
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	if full {
		section = &imap.FetchItemBodySection{Peek: true}
	}
	bufs, err := c.Fetch(all, &imap.FetchOptions{Flags: true, InternalDate: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("FETCH %s: %v", name, err)
	}
	for _, b := range bufs {
		var fl []string
		for _, f := range b.Flags {
			if !strings.EqualFold(string(f), `\Recent`) {
				fl = append(fl, strings.ToLower(string(f)))
			}
		}
		slices.Sort(fl)
		h := sha256.Sum256(b.FindBodySection(section))
		key := fmt.Sprintf("%x/%d", h[:8], b.RFC822Size)
		out[key] = append(out[key], remoteMessage{strings.Join(fl, " "), b.InternalDate.Format(time.RFC3339)})
	}
	return out
}

func dialIMAPS(t *testing.T, addr string, tc *tls.Config, login, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: tc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(login, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// countMessages sums STATUS MESSAGES over the migrated mailboxes.
func countMessages(c *imapclient.Client) (int, error) {
	n := 0
	for _, f := range migrateFolders {
		st, err := c.Status(f.local, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			if strings.Contains(err.Error(), "NONEXISTENT") || strings.Contains(err.Error(), "TRYCREATE") {
				continue
			}
			return 0, err
		}
		n += int(*st.NumMessages)
	}
	return n, nil
}

var summaryMessages = regexp.MustCompile(`(?m)^messages: (\d+)$`)

// migrateRun is one `posthouse admin migrate` process.
type migrateRun struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	start          time.Time
}

func startMigrate(t *testing.T, s *Server, from string) *migrateRun {
	t.Helper()
	statSources()
	r := &migrateRun{start: time.Now()}
	r.cmd = exec.Command(binary, "admin", "--config", s.ConfigPath, "migrate", "--from", from, "--login", remoteUser,
		"--password-stdin", "--insecure", "--parallel", "4", migrateUser)
	r.cmd.Dir, r.cmd.Env = s.Dir, s.env
	r.cmd.Stdin = strings.NewReader(remotePass + "\n")
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

// wait waits for the process and returns its exit code and figures.
func (r *migrateRun) wait(t *testing.T, limit time.Duration) (code int, dur time.Duration, maxRSS int64) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		r.cmd.Process.Kill()
		<-done
		t.Fatalf("migrate still running after %v\nstdout: %s\nstderr: %s", limit, r.stdout.String(), r.stderr.String())
	}
	if ru, ok := r.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxRSS = ru.Maxrss
	}
	return r.cmd.ProcessState.ExitCode(), time.Since(r.start), maxRSS
}

func (r *migrateRun) stored(t *testing.T) int {
	t.Helper()
	m := summaryMessages.FindStringSubmatch(r.stdout.String())
	if m == nil {
		t.Fatalf("no summary\nstdout: %s\nstderr: %s", r.stdout.String(), r.stderr.String())
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestMigrateFromDovecot copies 5,000 messages in 10 folders from a real
// Dovecot, kills the copy half way, resumes it (over STARTTLS this time),
// and checks over IMAP that every message is there once, with its flags,
// keywords and internal date, in the mailbox its special use says.
func TestMigrateFromDovecot(t *testing.T) {
	var mailboxes []dovecotMailbox
	for _, m := range []struct{ name, use string }{{"Sent", `\Sent`}, {"Drafts", `\Drafts`}, {"Trash", `\Trash`}, {"Spam", `\Junk`}, {"Old Stuff", `\Archive`}} {
		mailboxes = append(mailboxes, dovecotMailbox{m.name, m.use})
	}
	d := startDovecot(t, []dovecotUser{{remoteUser, remotePass}}, mailboxes, func(home func(string) string) {
		fillRemoteMaildir(t, filepath.Join(home(remoteUser), "Maildir"))
	})
	s := startServer(t, "[listen]\npop3 = \"\"\npop3s = \"\"\nsubmission = \"\"\nsubmissions = \"\"\nmanagesieve = \"\"\n")
	s.AddUser(t, migrateUser, "new-secret")
	ph := dialIMAPS(t, s.Addr("imaps"), s.imapTLS(), migrateUser, "new-secret")
	total := len(migrateFolders) * migratePerFolder

	// First run, killed once half the messages are in.
	first := startMigrate(t, s, "imaps://"+d.IMAPSAddr)
	exited := make(chan struct{})
	go func() { first.cmd.Wait(); close(exited) }()
	atKill := 0
	for {
		n, err := countMessages(ph)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-exited:
			t.Fatalf("migrate exited before it was killed (at %d of %d messages)\nstdout: %s\nstderr: %s", n, total, first.stdout.String(), first.stderr.String())
		default:
		}
		if n >= total/2 {
			first.cmd.Process.Kill()
			<-exited
			atKill, _ = countMessages(ph)
			break
		}
		if time.Since(first.start) > 2*time.Minute {
			first.cmd.Process.Kill()
			t.Fatalf("only %d messages after 2 minutes\nstderr: %s", n, first.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	firstDur := time.Since(first.start)
	t.Logf("first run killed after %v with %d of %d messages stored", firstDur.Round(time.Millisecond), atKill, total)

	// Resume over STARTTLS: only what is missing is copied.
	second := startMigrate(t, s, "imap://"+d.IMAPAddr)
	code, dur, rss := second.wait(t, 2*time.Minute)
	if code != 0 {
		t.Fatalf("resumed migrate: exit %d\nstdout: %s\nstderr: %s", code, second.stdout.String(), second.stderr.String())
	}
	// A message whose append the kill cut may be counted by neither: the
	// resumed run finds it stored (see mailimport) and does not count it.
	if n := second.stored(t); atKill+n > total || atKill+n < total-4 {
		t.Errorf("resume stored %d after %d: %d in all, want %d\nstdout: %s", n, atKill, atKill+n, total, second.stdout.String())
	}
	t.Logf("resumed run: %d messages in %v, max RSS %d MiB\n%s", second.stored(t), dur.Round(time.Millisecond), rss>>10, second.stdout.String())

	// A third run finds nothing to do.
	third := startMigrate(t, s, "imaps://"+d.IMAPSAddr)
	if code, _, _ := third.wait(t, time.Minute); code != 0 || third.stored(t) != 0 {
		t.Fatalf("third run: exit %d\nstdout: %s\nstderr: %s", code, third.stdout.String(), third.stderr.String())
	}

	// Compare every folder over IMAP.
	dv := dialIMAPS(t, d.IMAPSAddr, &tls.Config{InsecureSkipVerify: true}, remoteUser, remotePass) // the test's own self-signed Dovecot
	for _, f := range migrateFolders {
		want := mailboxContents(t, dv, f.remote, f.remote == "INBOX")
		got := mailboxContents(t, ph, f.local, f.remote == "INBOX")
		n := 0
		for h, w := range want {
			n += len(w)
			g := got[h]
			if len(g) != len(w) {
				t.Errorf("%s → %s: message %s: %d copies, want %d", f.remote, f.local, h, len(g), len(w))
				continue
			}
			slices.SortFunc(g, func(a, b remoteMessage) int { return strings.Compare(a.flags+a.date, b.flags+b.date) })
			slices.SortFunc(w, func(a, b remoteMessage) int { return strings.Compare(a.flags+a.date, b.flags+b.date) })
			if !slices.Equal(g, w) {
				t.Errorf("%s → %s: message %s: got %+v, want %+v", f.remote, f.local, h, g, w)
			}
		}
		for h := range got {
			if _, ok := want[h]; !ok {
				t.Errorf("%s → %s: message %s is not on the remote", f.remote, f.local, h)
			}
		}
		if n != migratePerFolder {
			t.Errorf("remote %s has %d messages, want %d", f.remote, n, migratePerFolder)
		}
	}
}
