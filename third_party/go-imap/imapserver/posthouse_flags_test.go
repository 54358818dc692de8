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

// flagsSession polls its own tracker, which adds \Recent to UID 2's flags.
type flagsSession struct {
	*imapmemserver.UserSession
	tracker *imapserver.SessionTracker
}

func (s *flagsSession) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	return s.tracker.Poll(w, allowExpunge)
}

// TestSessionTrackerMessageFlagsFunc: a session's FETCH FLAGS updates carry
// the flags its SetMessageFlagsFunc gives, and another session of the same
// mailbox, and the shared update, are left alone (Posthouse patch).
func TestSessionTrackerMessageFlagsFunc(t *testing.T) {
	mailbox := imapserver.NewMailboxTracker(3)
	mine, other := mailbox.NewSession(), mailbox.NewSession()
	defer mine.Close()
	defer other.Close()
	mine.SetMessageFlagsFunc(func(uid imap.UID, flags []imap.Flag) []imap.Flag {
		if uid == 2 {
			return append(slices.Clone(flags), `\Recent`)
		}
		return flags
	})

	user := imapmemserver.NewUser("user", "pass")
	sessions := make(chan *flagsSession, 2)
	sessions <- &flagsSession{UserSession: imapmemserver.NewUserSession(user), tracker: mine}
	sessions <- &flagsSession{UserSession: imapmemserver.NewUserSession(user), tracker: other}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return <-sessions, &imapserver.GreetingData{PreAuth: true}, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	noop := func(conn net.Conn, r *bufio.Reader) []string {
		t.Helper()
		if _, err := conn.Write([]byte("A1 NOOP\r\n")); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("after %q: %v", lines, err)
			}
			if strings.HasPrefix(l, "A1 ") {
				return lines
			}
			lines = append(lines, strings.TrimRight(l, "\r\n"))
		}
	}
	dial := func() (net.Conn, *bufio.Reader) {
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
		return conn, r
	}
	c1, r1 := dial()
	c2, r2 := dial()

	mailbox.QueueMessageFlags(1, 1, []imap.Flag{imap.FlagSeen}, nil)
	mailbox.QueueMessageFlags(2, 2, []imap.Flag{imap.FlagSeen}, nil)
	want := []string{`* 1 FETCH (UID 1 FLAGS (\Seen))`, `* 2 FETCH (UID 2 FLAGS (\Seen \Recent))`}
	if got := noop(c1, r1); !slices.Equal(got, want) {
		t.Errorf("session with the func: got %q, want %q", got, want)
	}
	want = []string{`* 1 FETCH (UID 1 FLAGS (\Seen))`, `* 2 FETCH (UID 2 FLAGS (\Seen))`}
	if got := noop(c2, r2); !slices.Equal(got, want) {
		t.Errorf("other session: got %q, want %q", got, want)
	}
}
