package integration

// A broken index: one account's index.sqlite truncated, filled with
// garbage, deleted, or made unusable while the server is stopped; and a
// message file lost while it runs.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

const indexPass = "index-faults-secret"

// dialIMAPAs logs in as user.
func dialIMAPAs(t *testing.T, s *Server, user string) *imapSession {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr("imap"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	is := &imapSession{t: t, c: c, r: bufio.NewReader(c)}
	is.line()
	is.ok("LOGIN %s %s", user, indexPass)
	return is
}

// sendSource spreads test deliveries over loopback source addresses, so
// the server's per-address connection rate limit does not refuse them.
var sendSource atomic.Uint32

// sendToUser delivers one message to user on port 25.
func sendToUser(s *Server, user, subject string) error {
	n := sendSource.Add(1)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 21, byte(n%250+1))}, Timeout: 30 * time.Second}
	conn, err := d.Dial("tcp", s.Addr("smtp"))
	if err != nil {
		return err
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		return err
	}
	msg := fmt.Sprintf("From: sender@remote.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@remote.test>\r\n\r\nbody of %s\r\n", user, subject, subject, subject)
	return goSend(c, "sender@remote.test", []string{user}, msg)
}

var fetchLine = regexp.MustCompile(`^\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\) BODY\[HEADER\.FIELDS \("?SUBJECT"?\)\] \{\d+\}\r\nSubject: (\S+)`)

// inboxView is INBOX as a client sees it: UIDVALIDITY and, per subject,
// "uid flags", each subject counted.
type inboxView struct {
	uidValidity string
	bySubject   map[string]string
	count       map[string]int
}

func readInbox(t *testing.T, s *Server, user string) inboxView {
	t.Helper()
	is := dialIMAPAs(t, s, user)
	v := inboxView{bySubject: map[string]string{}, count: map[string]int{}}
	for _, l := range is.ok("SELECT INBOX") {
		if m := regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`).FindStringSubmatch(l); m != nil {
			v.uidValidity = m[1]
		}
	}
	for _, l := range is.ok("FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])") {
		m := fetchLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		flags := strings.Fields(m[2])
		flags = slices.DeleteFunc(flags, func(f string) bool { return f == `\Recent` })
		slices.Sort(flags)
		v.bySubject[m[3]] = m[1] + " " + strings.Join(flags, " ")
		v.count[m[3]]++
	}
	is.ok("LOGOUT")
	return v
}

// userInboxDir returns the Maildir directory of user's INBOX.
func userInboxDir(t *testing.T, s *Server, user string) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(s.DataDir, "accounts", user, "maildir", "*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "posthouse-mailbox.json"))
		var meta struct{ Name string }
		if err == nil && json.Unmarshal(b, &meta) == nil && meta.Name == "INBOX" {
			return d
		}
	}
	t.Fatalf("no INBOX directory for %s", user)
	return ""
}

// TestBrokenIndex damages the index of three accounts of five in three
// ways, and makes a fourth's unusable, with the server stopped; starts it
// again; and checks that the untouched account is exactly as it was, the
// damaged ones are rebuilt with every message exactly once (with the flags
// a file name carried), the unusable one answers temporary errors on IMAP,
// POP3 and SMTP while the others work, and that `admin check --repair`
// brings it back while the server runs.
func TestBrokenIndex(t *testing.T) {
	s := startServer(t, "")
	users := map[string]string{ // user → damage
		"intact@example.org":    "",
		"truncated@example.org": "truncate",
		"garbage@example.org":   "garbage",
		"deleted@example.org":   "delete",
		"broken@example.org":    "unusable",
	}
	const perUser = 15
	want := map[string]map[string]bool{}
	for u := range users {
		s.AddUser(t, u, indexPass)
		want[u] = map[string]bool{}
		for i := 0; i < perUser; i++ {
			subj := fmt.Sprintf("%s-%d", strings.Split(u, "@")[0], i)
			if err := sendToUser(s, u, subj); err != nil {
				t.Fatalf("deliver %s: %v", subj, err)
			}
			want[u][subj] = true
		}
		is := dialIMAPAs(t, s, u)
		is.ok("SELECT INBOX")
		is.ok(`STORE 1:4 +FLAGS (\Flagged \Seen)`)
		is.ok("LOGOUT")
	}
	intactBefore := readInbox(t, s, "intact@example.org")
	s.Stop(t)

	rng := rand.New(rand.NewSource(1))
	for u, damage := range users {
		idx := filepath.Join(s.DataDir, "accounts", u, "index.sqlite")
		fi, err := os.Stat(idx)
		if err != nil {
			t.Fatal(err)
		}
		switch damage {
		case "truncate":
			err = os.Truncate(idx, fi.Size()/2)
		case "garbage":
			b := make([]byte, fi.Size())
			rng.Read(b)
			err = os.WriteFile(idx, b, 0o600)
		case "delete":
			err = os.Remove(idx)
		case "unusable":
			// Something no rebuild at start-up gets past: a directory
			// where the index should be.
			if err = os.Remove(idx); err == nil {
				err = os.Mkdir(idx, 0o700)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if damage != "" && damage != "unusable" {
			// A file another tool dropped, its flags in its name.
			name := filepath.Join(userInboxDir(t, s, u), "cur", "1700000000.M1P1Q1.elsewhere:2,FS")
			subj := strings.Split(u, "@")[0] + "-dropped"
			msg := fmt.Sprintf("From: a@remote.test\r\nSubject: %s\r\n\r\nx\r\n", subj)
			if err := os.WriteFile(name, []byte(msg), 0o600); err != nil {
				t.Fatal(err)
			}
			want[u][subj] = true
		}
	}

	start := time.Now()
	s.Restart(t)
	t.Logf("recovery: server accepting %v after start with 3 rebuilt and 1 unusable index of %d messages each", time.Since(start).Round(time.Millisecond), perUser)
	log := s.Log()
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=ERROR") && (strings.Contains(l, "index") || strings.Contains(l, "unavailable")) {
			t.Log(l)
		}
	}
	for u, damage := range users {
		switch damage {
		case "truncate", "garbage", "delete":
			if !regexp.MustCompile(`index rebuilt from the Maildir.*` + regexp.QuoteMeta(u) + `|` + regexp.QuoteMeta(u) + `.*index rebuilt from the Maildir`).MatchString(log) {
				t.Errorf("no rebuild of %s logged", u)
			}
		}
	}

	// The untouched account: the same UIDVALIDITY, UIDs and flags.
	if got := readInbox(t, s, "intact@example.org"); got.uidValidity != intactBefore.uidValidity ||
		fmt.Sprint(got.bySubject) != fmt.Sprint(intactBefore.bySubject) {
		t.Errorf("intact account changed:\n%+v\nwas\n%+v", got, intactBefore)
	}
	// The rebuilt ones: every message exactly once, flags from names.
	for u, damage := range users {
		if damage == "" || damage == "unusable" {
			continue
		}
		v := readInbox(t, s, u)
		for subj := range want[u] {
			if v.count[subj] != 1 {
				t.Errorf("%s: %s present %d times", u, subj, v.count[subj])
			}
		}
		if len(v.count) != len(want[u]) {
			t.Errorf("%s: %d messages, want %d", u, len(v.count), len(want[u]))
		}
		dropped := v.bySubject[strings.Split(u, "@")[0]+"-dropped"]
		if !strings.HasSuffix(dropped, ` \Flagged \Seen`) {
			t.Errorf("%s: dropped file has %q, want \\Flagged \\Seen from its name", u, dropped)
		}
		// The account takes mail again.
		subj := strings.Split(u, "@")[0] + "-after"
		if err := sendToUser(s, u, subj); err != nil {
			t.Errorf("%s: delivery after rebuild: %v", u, err)
		}
		want[u][subj] = true
	}

	// The unusable one: temporary errors everywhere, the others unaffected.
	broken := "broken@example.org"
	c, err := net.Dial("tcp", s.Addr("imap"))
	if err != nil {
		t.Fatal(err)
	}
	is := &imapSession{t: t, c: c, r: bufio.NewReader(c)}
	is.line()
	if _, done := is.cmd("LOGIN %s %s", broken, indexPass); !strings.HasPrefix(done, "NO [UNAVAILABLE]") {
		t.Errorf("IMAP LOGIN of the broken account: %q, want NO [UNAVAILABLE]", done)
	}
	c.Close()
	if l := pop3Login(t, s, broken); !strings.HasPrefix(l, "-ERR [SYS/TEMP]") {
		t.Errorf("POP3 login of the broken account: %q, want -ERR [SYS/TEMP]", l)
	}
	smtpCode(t, "delivery to the broken account", sendToUser(s, broken, "broken-while-broken"), 451, smtp.EnhancedCode{4, 3, 0})
	if err := sendToUser(s, "intact@example.org", "intact-after"); err != nil {
		t.Errorf("delivery to the intact account: %v", err)
	}

	// admin check sees it; --repair fixes it while the server runs.
	r := s.RunAdmin(t, "", "check")
	if r.Code != 1 || !strings.Contains(r.Stdout, broken+": 1 problem") || !strings.Contains(r.Stdout, "intact@example.org: ok") {
		t.Errorf("admin check: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	start = time.Now()
	r = s.RunAdmin(t, "", "check", "--repair", broken)
	if r.Code != 0 || !strings.Contains(r.Stdout, broken+": repaired") {
		t.Errorf("admin check --repair: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("recovery: admin check --repair of the unusable account took %v", time.Since(start).Round(time.Millisecond))
	v := readInbox(t, s, broken)
	for subj := range want[broken] {
		if v.count[subj] != 1 {
			t.Errorf("%s after repair: %s present %d times", broken, subj, v.count[subj])
		}
	}
	if err := sendToUser(s, broken, "broken-after"); err != nil {
		t.Errorf("delivery after repair: %v", err)
	}
	if r := s.RunAdmin(t, "", "check"); r.Code != 0 {
		t.Errorf("admin check after repair: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// pop3Login logs in with USER/PASS and returns the reply to PASS.
func pop3Login(t *testing.T, s *Server, user string) string {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr("pop3"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	r.ReadString('\n')
	fmt.Fprintf(c, "USER %s\r\n", user)
	r.ReadString('\n')
	fmt.Fprintf(c, "PASS %s\r\n", indexPass)
	l, _ := r.ReadString('\n')
	return strings.TrimRight(l, "\r\n")
}

// TestLostMessageFile removes a message file while the server runs and a
// client has the mailbox selected: the FETCH of it completes without the
// message and without a crash, the client is told it was expunged, the
// server logs it, and every other message is still there exactly once.
func TestLostMessageFile(t *testing.T) {
	s := startServer(t, "")
	const user = "lost@example.org"
	s.AddUser(t, user, indexPass)
	want := map[string]bool{}
	for i := 0; i < 5; i++ {
		subj := fmt.Sprintf("lost-%d", i)
		if err := sendToUser(s, user, subj); err != nil {
			t.Fatal(err)
		}
		want[subj] = true
	}
	is := dialIMAPAs(t, s, user)
	is.ok("SELECT INBOX")
	files, _ := filepath.Glob(filepath.Join(userInboxDir(t, s, user), "cur", "*"))
	for _, f := range files {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), "Subject: lost-2\r\n") {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	delete(want, "lost-2")
	untagged, done := is.cmd("FETCH 3 (BODY[])")
	if !strings.HasPrefix(done, "OK") && !strings.HasPrefix(done, "NO") {
		t.Fatalf("FETCH of the lost message: %q", done)
	}
	if !slices.ContainsFunc(untagged, func(l string) bool { return l == "* 3 EXPUNGE" }) {
		// The expunge may come with the next command.
		untagged = is.ok("NOOP")
		if !slices.Contains(untagged, "* 3 EXPUNGE") {
			t.Errorf("no EXPUNGE for the lost message: %q", untagged)
		}
	}
	got := is.subjects("1:*")
	if len(got) != 4 || slices.Contains(got, "lost-2") {
		t.Errorf("subjects after the loss: %v", got)
	}
	is.ok("LOGOUT")
	if !strings.Contains(s.Log(), "message file vanished; expunged its index row") {
		t.Errorf("loss not logged")
	}
	// A message delivered after still gets in, and the rest is intact.
	if err := sendToUser(s, user, "lost-after"); err != nil {
		t.Fatal(err)
	}
	want["lost-after"] = true
	v := readInbox(t, s, user)
	for subj := range want {
		if v.count[subj] != 1 {
			t.Errorf("%s present %d times", subj, v.count[subj])
		}
	}
	if len(v.count) != len(want) {
		t.Errorf("%d messages, want %d", len(v.count), len(want))
	}
}
