package integration

import (
	"database/sql"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
	_ "github.com/mattn/go-sqlite3" // reads and sets schema versions
)

// backupUsers are the accounts TestBackupRestore fills.
var backupUsers = map[string]string{"ann@example.org": "ann-secret", "bob@example.org": "bob-secret"}

// backupTOML: SMTP and IMAP only, and no limit on the rate of SMTP
// connections from the test's address.
const backupTOML = `
[limits]
max_connection_rate = 0
[listen]
pop3 = ""
pop3s = ""
submission = ""
submissions = ""
managesieve = ""
`

// deliverWithID sends one message with the given Message-ID to rcpt on the
// MTA port; nil means the server answered 250 (the mail is durable).
func deliverWithID(addr, rcpt, msgid string, size int) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: <sender@remote.test>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\n\r\n", rcpt, msgid, msgid)
	for b.Len() < size {
		b.WriteString("Backups keep every byte of this line. 0123456789\r\n")
	}
	if err := goSend(c, "sender@remote.test", []string{rcpt}, b.String()); err != nil {
		return err
	}
	return c.Quit()
}

// imapMessageState is what a client caches of one message.
type imapMessageState struct {
	uid    imap.UID
	flags  string
	modseq uint64
	msgid  string
	body   string
}

// imapMailboxState is one mailbox as a client sees it.
type imapMailboxState struct {
	uidValidity   uint32
	highestModSeq uint64
	msgs          map[imap.UID]imapMessageState
}

// imapAccountState reads every mailbox of an account over IMAP with
// CONDSTORE: UIDVALIDITY, and each message's UID, flags, modseq,
// Message-ID and body.
func imapAccountState(t *testing.T, s *Server, user, pass string) map[string]*imapMailboxState {
	t.Helper()
	c, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{TLSConfig: s.imapTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*imapMailboxState{}
	for _, l := range list {
		sel, err := c.Select(l.Mailbox, &imap.SelectOptions{CondStore: true}).Wait()
		if err != nil {
			t.Fatalf("%s: select %s: %v", user, l.Mailbox, err)
		}
		mb := &imapMailboxState{uidValidity: sel.UIDValidity, highestModSeq: sel.HighestModSeq, msgs: map[imap.UID]imapMessageState{}}
		out[l.Mailbox] = mb
		if sel.NumMessages == 0 {
			continue
		}
		var all imap.SeqSet
		all.AddRange(1, sel.NumMessages)
		msgs, err := c.Fetch(all, &imap.FetchOptions{
			UID: true, Flags: true, ModSeq: true, Envelope: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			t.Fatalf("%s: fetch %s: %v", user, l.Mailbox, err)
		}
		for _, m := range msgs {
			flags := make([]string, len(m.Flags))
			for i, f := range m.Flags {
				flags[i] = string(f)
			}
			slices.Sort(flags)
			var body []byte
			if len(m.BodySection) > 0 {
				body = m.BodySection[0].Bytes
			}
			mb.msgs[m.UID] = imapMessageState{uid: m.UID, flags: strings.Join(flags, " "), modseq: m.ModSeq,
				msgid: m.Envelope.MessageID, body: string(body)}
		}
	}
	return out
}

// TestBackupRestore: a backup taken while SMTP deliveries run, restored
// into a new data_dir and served, shows every mailbox as the source does
// (UIDVALIDITY, UIDs, flags, modseqs, bodies) for every message
// acknowledged before the backup began; nothing the source lacks; a second
// backup into the same directory copies only the new message files.
func TestBackupRestore(t *testing.T) {
	s := startServer(t, backupTOML)
	for u, p := range backupUsers {
		s.AddUser(t, u, p)
	}
	users := slices.Sorted(func(yield func(string) bool) {
		for u := range backupUsers {
			if !yield(u) {
				return
			}
		}
	})

	// Some history before: messages, a second mailbox, flags and
	// keywords, a move and an expunge (so UIDs have gaps and modseqs
	// differ).
	var seq atomic.Int64
	acked := sync.Map{} // Message-ID → true once the server said 250
	deliver := func(rcpt string) error {
		id := fmt.Sprintf("m%d-%s@backup.test", seq.Add(1), strings.Split(rcpt, "@")[0])
		if err := deliverWithID(s.Addr("smtp"), rcpt, id, 600+int(seq.Load()%7)*300); err != nil {
			return err
		}
		acked.Store(id, time.Now())
		return nil
	}
	for i := 0; i < 12; i++ {
		for _, u := range users {
			if err := deliver(u); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, u := range users {
		c, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{TLSConfig: s.imapTLS()})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(u, backupUsers[u]).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := c.Create("Projects/2027", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			set   imap.UIDSet
			flags []imap.Flag
		}{
			{imap.UIDSetNum(1, 2, 3, 5, 8), []imap.Flag{imap.FlagSeen}},
			{imap.UIDSetNum(2, 9), []imap.Flag{imap.FlagFlagged, "$Label1"}},
			{imap.UIDSetNum(4), []imap.Flag{imap.FlagAnswered, imap.FlagSeen}},
			{imap.UIDSetNum(6), []imap.Flag{imap.FlagDeleted}},
		}
		for _, st := range steps {
			if err := c.Store(st.set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: st.flags, Silent: true}, nil).Close(); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Expunge().Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Move(imap.UIDSetNum(7, 10), "Projects/2027").Wait(); err != nil {
			t.Fatal(err)
		}
		c.Logout().Wait()
		c.Close()
	}

	// Deliveries keep running while the first backup is taken.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := deliver(u); err != nil {
					failures.Add(1)
				}
			}
		}()
	}
	// Let the loop run a little so the backup starts among deliveries.
	for seq.Load() < 60 {
		time.Sleep(10 * time.Millisecond)
	}
	backupDir := filepath.Join(t.TempDir(), "backups")
	began, sentBefore := time.Now(), seq.Load()
	out := s.Admin(t, "", "backup", backupDir)
	deliveredDuring := seq.Load()
	if deliveredDuring == sentBefore {
		t.Errorf("no delivery ran while the backup was taken")
	}
	close(stop)
	wg.Wait()
	t.Logf("first backup (deliveries running, %d messages sent so far):\n%s", deliveredDuring, out)
	if n := failures.Load(); n > 0 {
		t.Errorf("%d deliveries failed while the backup ran", n)
	}
	snap1 := field(t, out, `snapshot: (\S+)`)
	s.Admin(t, "", "backup", "verify", backupDir)

	// The second backup, with --copy so that links to data_dir do not
	// hide the count: what the first snapshot holds is linked to it, only
	// message files it lacks are copied.
	for i := 0; i < 3; i++ {
		for _, u := range users {
			if err := deliver(u); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := 0
	for _, f := range messageFiles(t, s.DataDir) {
		if _, err := os.Stat(filepath.Join(snap1, "data", f)); err != nil {
			want++
		}
	}
	out2 := s.Admin(t, "", "backup", "--copy", backupDir)
	t.Logf("second backup:\n%s", out2)
	copied, _ := strconv.Atoi(field(t, out2, `(\d+) copied\)`))
	reused, _ := strconv.Atoi(field(t, out2, `(\d+) linked to the previous snapshot`))
	if copied != want || want < 6 {
		t.Errorf("second backup copied %d message files; %d are new since the first (at least the 6 sent after it)", copied, want)
	}
	if total, _ := strconv.Atoi(field(t, out2, `message files: (\d+)`)); reused != total-copied {
		t.Errorf("second backup: %d of %d message files linked to the first, want %d", reused, total, total-copied)
	}
	if linked := field(t, out2, `(\d+) linked to data_dir`); linked != "0" {
		t.Errorf("--copy linked %s files to data_dir", linked)
	}
	verify := s.Admin(t, "", "backup", "verify", backupDir)
	if !strings.HasPrefix(verify, "ok: ") {
		t.Errorf("verify: %s", verify)
	}

	// Restore the first snapshot into a new data_dir; the configuration
	// goes where we ask.
	restoreDir := filepath.Join(t.TempDir(), "restored")
	cfgCopy := filepath.Join(t.TempDir(), "restored.toml")
	rout := s.Admin(t, "", "restore", "--data-dir", restoreDir, "--config-to", cfgCopy, snap1)
	t.Logf("restore:\n%s", rout)
	if a, b := readFile(t, s.ConfigPath), readFile(t, cfgCopy); a != b {
		t.Errorf("restored configuration differs from the original")
	}
	if r := s.RunAdmin(t, "", "restore", "--data-dir", restoreDir, snap1); r.Code != 5 || !strings.Contains(r.Stderr, "not empty") {
		t.Errorf("restore into a non-empty data_dir: exit %d, %s", r.Code, r.Stderr)
	}

	// The source at rest, then a server on the restored data.
	src := map[string]map[string]*imapMailboxState{}
	for _, u := range users {
		src[u] = imapAccountState(t, s, u, backupUsers[u])
	}
	r := startServer(t, fmt.Sprintf("data_dir = %q\n%s", restoreDir, backupTOML))
	r.DataDir = restoreDir
	checked := 0
	for _, u := range users {
		got := imapAccountState(t, r, u, backupUsers[u])
		for name, smb := range src[u] {
			gmb := got[name]
			if gmb == nil {
				t.Errorf("%s: mailbox %s missing after restore", u, name)
				continue
			}
			if gmb.uidValidity != smb.uidValidity {
				t.Errorf("%s %s: UIDVALIDITY %d, source %d", u, name, gmb.uidValidity, smb.uidValidity)
			}
			if gmb.highestModSeq > smb.highestModSeq {
				t.Errorf("%s %s: HIGHESTMODSEQ %d above the source's %d", u, name, gmb.highestModSeq, smb.highestModSeq)
			}
			for uid, g := range gmb.msgs {
				sm, ok := smb.msgs[uid]
				if !ok {
					t.Errorf("%s %s: UID %d (%s) restored but not in the source", u, name, uid, g.msgid)
					continue
				}
				if g != sm {
					t.Errorf("%s %s UID %d: restored {%s flags %q modseq %d, %d bytes}, source {%s flags %q modseq %d, %d bytes}",
						u, name, uid, g.msgid, g.flags, g.modseq, len(g.body), sm.msgid, sm.flags, sm.modseq, len(sm.body))
				}
			}
			for uid, sm := range smb.msgs {
				at, ok := acked.Load(sm.msgid)
				if !ok || !at.(time.Time).Before(began) {
					continue // acknowledged after the backup began: may or may not be in it
				}
				checked++
				if _, ok := gmb.msgs[uid]; !ok {
					t.Errorf("%s %s: UID %d (%s), acknowledged before the backup, missing after restore", u, name, uid, sm.msgid)
				}
			}
		}
		for name := range got {
			if src[u][name] == nil {
				t.Errorf("%s: mailbox %s restored but not in the source", u, name)
			}
		}
	}
	if checked < 45 {
		t.Errorf("only %d messages acknowledged before the backup were compared", checked)
	}
	t.Logf("compared %d messages acknowledged before the backup; %d sent in all", checked, seq.Load())
}

// field returns the first submatch of re in out, failing the test if none.
func field(t *testing.T, out, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, out)
	}
	return m[1]
}

// messageFiles lists the message files in data_dir's Maildirs, relative
// to data_dir.
func messageFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(dataDir, "accounts"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && filepath.Base(filepath.Dir(p)) == "cur" {
			rel, _ := filepath.Rel(dataDir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFailedUpgradeRefusesStart: a schema upgrade that fails (here the
// system database claims one version less than it has, so the last
// migration runs again and fails) leaves the database unchanged, keeps a
// copy from before, and serve exits with one line naming the file, the
// copy and what to do. Once the cause is gone the server starts on the
// untouched database.
func TestFailedUpgradeRefusesStart(t *testing.T) {
	s := startServer(t, backupTOML)
	s.AddUser(t, "ann@example.org", "ann-secret")
	s.Stop(t)

	usersDB := filepath.Join(s.DataDir, "users.sqlite")
	version := sqliteUserVersion(t, usersDB)
	setUserVersion(t, usersDB, version-1)
	r := runPosthouse(t, s.Dir, s.env, "", "serve", "--config", s.ConfigPath)
	if r.Code == 0 {
		t.Fatal("serve started after a failed schema upgrade")
	}
	copyPath := fmt.Sprintf("%s.pre-v%d.bak", usersDB, version)
	var line string
	for _, l := range strings.Split(r.Stderr, "\n") {
		if strings.HasPrefix(l, "posthouse: ") {
			line = l
		}
	}
	t.Logf("serve refused to start:\n%s", line)
	for _, want := range []string{usersDB + ":", copyPath, fmt.Sprintf("left unchanged at v%d", version-1), "previous Posthouse release", "report this line"} {
		if !strings.Contains(line, want) {
			t.Errorf("serve's last line lacks %q:\n%s", want, line)
		}
	}
	if v := sqliteUserVersion(t, usersDB); v != version-1 {
		t.Errorf("users.sqlite at v%d after the failed upgrade, want v%d (unchanged)", v, version-1)
	}
	if v := sqliteUserVersion(t, copyPath); v != version-1 {
		t.Errorf("the copy is at v%d, want v%d", v, version-1)
	}

	setUserVersion(t, usersDB, version)
	s.Restart(t)
	c, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{TLSConfig: s.imapTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("ann@example.org", "ann-secret").Wait(); err != nil {
		t.Errorf("login after the failed upgrade: %v", err)
	}
}

// sqliteUserVersion reads a database's PRAGMA user_version.
func sqliteUserVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func setUserVersion(t *testing.T, path string, v int) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
		t.Fatal(err)
	}
}
