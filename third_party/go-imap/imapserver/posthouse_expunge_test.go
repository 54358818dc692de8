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

// TestSessionTrackerExpungeFunc: the func set with SetExpungeFunc runs
// before each EXPUNGE with its sequence number and the UID given to
// QueueExpungeUID, and what it writes precedes the EXPUNGE (Posthouse
// patch).
func TestSessionTrackerExpungeFunc(t *testing.T) {
	mailbox := imapserver.NewMailboxTracker(5)
	mine := mailbox.NewSession()
	defer mine.Close()
	var got []string
	mine.SetExpungeFunc(func(w *imapserver.UpdateWriter, seqNum uint32, uid imap.UID) error {
		got = append(got, "hook")
		if uid == 14 {
			return w.WriteSearchUpdate("T1", imapserver.NumKindSeq, true, 0, imap.SeqSetNum(seqNum))
		}
		return nil
	})

	user := imapmemserver.NewUser("user", "pass")
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &flagsSession{UserSession: imapmemserver.NewUserSession(user), tracker: mine},
				&imapserver.GreetingData{PreAuth: true}, nil
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
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* PREAUTH") {
		t.Fatalf("greeting: %q %v", l, err)
	}

	mailbox.QueueExpungeUID(3, 13)
	mailbox.QueueExpungeUID(3, 14)
	mailbox.QueueExpunge(3)
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
			break
		}
		lines = append(lines, strings.TrimRight(l, "\r\n"))
	}
	want := []string{"* 3 EXPUNGE", `* ESEARCH (TAG "T1") REMOVEFROM (0 3)`, "* 3 EXPUNGE", "* 3 EXPUNGE"}
	if !slices.Equal(lines, want) {
		t.Errorf("got %q, want %q", lines, want)
	}
	if len(got) != 3 {
		t.Errorf("hook ran %d times, want 3", len(got))
	}
}
