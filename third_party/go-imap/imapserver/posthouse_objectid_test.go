package imapserver_test

import (
	"bufio"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// objectIDSession gives every mailbox the ID "M1" and message 1 the
// EMAILID "E1" without a THREADID; it records SEARCH criteria.
type objectIDSession struct {
	*imapmemserver.UserSession
	criteria *imap.SearchCriteria
}

func (s *objectIDSession) CreateMailboxID(mailbox string, options *imap.CreateOptions) (string, error) {
	return "M1", s.UserSession.Create(mailbox, options)
}

func (s *objectIDSession) Select(mailbox string, options *imap.SelectOptions) (*imap.SelectData, error) {
	d, err := s.UserSession.Select(mailbox, options)
	if d != nil {
		d.MailboxID = "M1"
	}
	return d, err
}

func (s *objectIDSession) Status(mailbox string, options *imap.StatusOptions) (*imap.StatusData, error) {
	d, err := s.UserSession.Status(mailbox, options)
	if d != nil && options.MailboxID {
		d.MailboxID = "M1"
	}
	return d, err
}

func (s *objectIDSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	r := w.CreateMessage(1)
	if options.EmailID {
		r.WriteEmailID("E1")
	}
	if options.ThreadID {
		r.WriteThreadID("")
	}
	return r.Close()
}

func (s *objectIDSession) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	s.criteria = criteria
	return &imap.SearchData{All: imap.SeqSet{}}, nil
}

// TestObjectID: MAILBOXID in CREATE, SELECT and STATUS, EMAILID and
// THREADID in FETCH, and SEARCH EMAILID/THREADID (RFC 8474; Posthouse
// patch).
func TestObjectID(t *testing.T) {
	user := imapmemserver.NewUser("user", "pass")
	user.Create("INBOX", nil)
	sess := &objectIDSession{UserSession: imapmemserver.NewUserSession(user)}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return sess, &imapserver.GreetingData{PreAuth: true}, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapObjectID: {}},
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
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	r.ReadString('\n')
	cmd := func(line string) []string {
		t.Helper()
		if _, err := conn.Write([]byte("A " + line + "\r\n")); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v after %q", line, err, lines)
			}
			lines = append(lines, strings.TrimRight(l, "\r\n"))
			if strings.HasPrefix(l, "A ") {
				return lines
			}
		}
	}
	for _, tc := range []struct {
		cmd  string
		want string
	}{
		{"CREATE foo", "A OK [MAILBOXID (M1)] CREATE completed"},
		{"STATUS foo (MESSAGES MAILBOXID)", `* STATUS "foo" (MESSAGES 0 MAILBOXID (M1))`},
		{"SELECT INBOX", "* OK [MAILBOXID (M1)] Ok"},
		{"FETCH 1 (EMAILID THREADID)", "* 1 FETCH (EMAILID (E1) THREADID NIL)"},
		{"SEARCH EMAILID E1 THREADID T-1_a", "A OK SEARCH completed"},
		{"SEARCH EMAILID (E1)", "A BAD"},
		{"SEARCH EMAILID E.1", "A BAD"},
	} {
		if got := cmd(tc.cmd); !slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, tc.want) }) {
			t.Errorf("%s: %q, want %s", tc.cmd, got, tc.want)
		}
		if tc.cmd == "SEARCH EMAILID E1 THREADID T-1_a" && (sess.criteria == nil || !slices.Equal(sess.criteria.EmailID, []string{"E1"}) || !slices.Equal(sess.criteria.ThreadID, []string{"T-1_a"})) {
			t.Errorf("SEARCH criteria %+v", sess.criteria)
		}
	}
}
