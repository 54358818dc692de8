package imapserver_test

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// sortThreadSession answers SORT with a fixed order and THREAD with fixed
// threads, recording what it was asked.
type sortThreadSession struct {
	*imapmemserver.UserSession
	nums    []uint32
	threads []imap.ThreadData
	got     string
}

func (s *sortThreadSession) Sort(kind imapserver.NumKind, sortCriteria []imap.SortCriterion, criteria *imap.SearchCriteria) ([]uint32, error) {
	s.got = fmt.Sprintf("%v %v %v", kind, sortCriteria, criteria.Header)
	return s.nums, nil
}

func (s *sortThreadSession) Thread(kind imapserver.NumKind, alg imap.ThreadAlgorithm, criteria *imap.SearchCriteria) ([]imap.ThreadData, error) {
	s.got = fmt.Sprintf("%v %v %v", kind, alg, criteria.Header)
	return s.threads, nil
}

// dialSortThread starts a server whose one session is sess, selects INBOX
// and returns a function that sends a command and returns its response
// lines, the tagged one last.
func dialSortThread(t *testing.T, sess *sortThreadSession) func(cmd string) []string {
	t.Helper()
	return dialSession(t, sess, &sess.UserSession)
}

// dialSession is dialSortThread for any session embedding a UserSession,
// which it sets through us.
func dialSession(t *testing.T, sess imapserver.Session, us **imapmemserver.UserSession) func(cmd string) []string {
	t.Helper()
	user := imapmemserver.NewUser("user", "pass")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	*us = imapmemserver.NewUserSession(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return sess, &imapserver.GreetingData{PreAuth: true}, nil
		},
		InsecureAuth: true,
		Caps: imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapSort: {}, imap.CapESort: {},
			"THREAD=REFERENCES": {}},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* PREAUTH") {
		t.Fatalf("greeting: %q %v", l, err)
	}
	transact := func(cmd string) []string {
		t.Helper()
		if _, err := conn.Write([]byte("T " + cmd + "\r\n")); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("after %q: %v", lines, err)
			}
			lines = append(lines, strings.TrimRight(l, "\r\n"))
			if strings.HasPrefix(l, "T ") {
				return lines
			}
		}
	}
	if l := transact("SELECT INBOX"); !strings.HasPrefix(l[len(l)-1], "T OK") {
		t.Fatalf("SELECT: %q", l)
	}
	return transact
}

// TestSort: SORT and UID SORT parse their criteria, charset and search
// keys, answer SORT or, with RETURN, ESEARCH in sort order with PARTIAL
// ranges, and refuse bad syntax with BAD and other charsets with
// BADCHARSET (Posthouse patch).
func TestSort(t *testing.T) {
	sess := &sortThreadSession{nums: []uint32{5, 3, 4, 2, 1}}
	transact := dialSortThread(t, sess)
	for _, tc := range []struct {
		name, cmd string
		want      []string
		got       string
	}{
		{"plain", `SORT (REVERSE arrival subject) UTF-8 SUBJECT "x"`,
			[]string{"* SORT 5 3 4 2 1", "T OK SORT completed"},
			"seq [{ARRIVAL true} {SUBJECT false}] [{Subject x}]"},
		{"uid", `UID SORT (DISPLAYFROM) us-ascii ALL`,
			[]string{"* SORT 5 3 4 2 1", "T OK UID SORT completed"}, "uid [{DISPLAYFROM false}] []"},
		{"esort", `SORT RETURN (MIN MAX COUNT ALL) (SIZE) UTF-8 ALL`,
			[]string{`* ESEARCH (TAG "T") MIN 5 MAX 1 ALL 5,3:4,2,1 COUNT 5`, "T OK SORT completed"}, ""},
		{"esort empty return", `UID SORT RETURN () (SIZE) UTF-8 ALL`,
			[]string{`* ESEARCH (TAG "T") UID ALL 5,3:4,2,1`, "T OK UID SORT completed"}, ""},
		{"partial", `SORT RETURN (PARTIAL 4:2) (SIZE) UTF-8 ALL`,
			[]string{`* ESEARCH (TAG "T") PARTIAL (2:4 3:4,2)`, "T OK SORT completed"}, ""},
		{"partial from end", `SORT RETURN (PARTIAL -1:-2 COUNT) (SIZE) UTF-8 ALL`,
			[]string{`* ESEARCH (TAG "T") COUNT 5 PARTIAL (-1:-2 2,1)`, "T OK SORT completed"}, ""},
		{"partial beyond", `SORT RETURN (PARTIAL 6:9) (SIZE) UTF-8 ALL`,
			[]string{`* ESEARCH (TAG "T") PARTIAL (6:9 NIL)`, "T OK SORT completed"}, ""},
		{"bad charset", `SORT (SIZE) KOI8-R ALL`,
			[]string{"T NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess.got = ""
			if got := transact(tc.cmd); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if tc.got != "" && sess.got != tc.got {
				t.Errorf("session got %q, want %q", sess.got, tc.got)
			}
		})
	}
	for _, cmd := range []string{
		"SORT () UTF-8 ALL", "SORT (REVERSE) UTF-8 ALL", "SORT (REVERSE REVERSE SIZE) UTF-8 ALL",
		"SORT (FOO) UTF-8 ALL", "SORT (SIZE) UTF-8", "SORT (SIZE) ALL", "SORT SIZE UTF-8 ALL",
		"SORT RETURN (PARTIAL 1) (SIZE) UTF-8 ALL", "SORT RETURN (PARTIAL 1:*) (SIZE) UTF-8 ALL",
		"SORT RETURN (PARTIAL *:1) (SIZE) UTF-8 ALL", "SORT RETURN (PARTIAL 0:1) (SIZE) UTF-8 ALL",
		"SORT RETURN (PARTIAL -1:2) (SIZE) UTF-8 ALL", "SORT RETURN (ALL PARTIAL 1:2) (SIZE) UTF-8 ALL",
		"SORT RETURN (SAVE) (SIZE) UTF-8 ALL", "SORT FOO (SIZE) UTF-8 ALL",
	} {
		if got := transact(cmd); len(got) != 1 || !strings.HasPrefix(got[0], "T BAD") {
			t.Errorf("%s: got %q, want BAD", cmd, got)
		}
	}
}

// TestThread: THREAD and UID THREAD parse the algorithm, charset and
// search keys, write nested thread lists (dummy roots without a number),
// and refuse algorithms the server does not advertise (Posthouse patch).
func TestThread(t *testing.T) {
	sess := &sortThreadSession{threads: []imap.ThreadData{
		{Chain: []uint32{3, 6}, SubThreads: []imap.ThreadData{{Chain: []uint32{4, 23}}, {Chain: []uint32{44, 7, 96}}}},
		{SubThreads: []imap.ThreadData{{Chain: []uint32{1}}, {Chain: []uint32{2}}}},
		{Chain: []uint32{9}},
	}}
	transact := dialSortThread(t, sess)
	want := []string{"* THREAD (3 6 (4 23)(44 7 96))((1)(2))(9)", "T OK UID THREAD completed"}
	if got := transact(`UID THREAD references UTF-8 FROM "a"`); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if want := "uid REFERENCES [{From a}]"; sess.got != want {
		t.Errorf("session got %q, want %q", sess.got, want)
	}
	sess.threads = nil
	want = []string{"* THREAD", "T OK THREAD completed"}
	if got := transact(`THREAD REFERENCES US-ASCII ALL`); !slices.Equal(got, want) {
		t.Errorf("empty: got %q, want %q", got, want)
	}
	if got := transact(`THREAD REFERENCES KOI8-R ALL`); len(got) != 1 || !strings.HasPrefix(got[0], "T NO [BADCHARSET") {
		t.Errorf("bad charset: got %q", got)
	}
	for _, cmd := range []string{
		"THREAD ORDEREDSUBJECT UTF-8 ALL", "THREAD FOO UTF-8 ALL", "THREAD REFERENCES UTF-8",
		"THREAD REFERENCES ALL", "THREAD", "THREAD (REFERENCES) UTF-8 ALL",
	} {
		if got := transact(cmd); len(got) != 1 || !strings.HasPrefix(got[0], "T BAD") {
			t.Errorf("%s: got %q, want BAD", cmd, got)
		}
	}
}
