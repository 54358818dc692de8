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

// TestSessionTrackerReviseFlagUpdates: a session drops or replaces the
// FETCH FLAGS updates queued for it, in queue order, without touching the
// other updates of its queue or another session's copy of the same
// updates (Posthouse patch).
func TestSessionTrackerReviseFlagUpdates(t *testing.T) {
	mailbox := imapserver.NewMailboxTracker(3)
	mine, other := mailbox.NewSession(), mailbox.NewSession()
	defer mine.Close()
	defer other.Close()

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

	mailbox.QueueMessageFlagsModSeq(1, 1, []imap.Flag{imap.FlagSeen}, 5, nil)
	mailbox.QueueMessageFlagsModSeq(2, 2, []imap.Flag{imap.FlagSeen}, 6, nil)
	mailbox.QueueNumMessages(4)
	mailbox.QueueMailboxFlags([]imap.Flag{imap.FlagSeen, "$Label1"})
	mailbox.QueueMessageFlagsModSeq(1, 1, []imap.Flag{imap.FlagAnswered}, 7, nil)
	mailbox.QueueMessageFlagsModSeq(3, 3, []imap.Flag{imap.FlagDraft}, 8, nil)

	var calls []imap.UID
	mine.ReviseFlagUpdates(func(uid imap.UID, modSeq uint64) ([]imap.Flag, uint64, bool) {
		calls = append(calls, uid)
		switch {
		case uid == 1 && modSeq <= 7: // shown at 7 by the command
			return nil, 0, true
		case uid == 2: // shown at 9 without its flags
			return []imap.Flag{imap.FlagSeen, "$Label1"}, 9, false
		}
		return nil, 0, false
	})
	if want := []imap.UID{1, 2, 1, 3}; !slices.Equal(calls, want) {
		t.Errorf("fn called for %v, want %v", calls, want)
	}
	// The FLAGS announcing $Label1 moves ahead of the replaced update.
	want := []string{`* FLAGS (\Seen $Label1)`, `* 2 FETCH (UID 2 FLAGS (\Seen $Label1))`, `* 4 EXISTS`, `* 3 FETCH (UID 3 FLAGS (\Draft))`}
	if got := noop(c1, r1); !slices.Equal(got, want) {
		t.Errorf("revised session: got %q, want %q", got, want)
	}
	want = []string{`* 1 FETCH (UID 1 FLAGS (\Seen))`, `* 2 FETCH (UID 2 FLAGS (\Seen))`, `* 4 EXISTS`, `* FLAGS (\Seen $Label1)`,
		`* 1 FETCH (UID 1 FLAGS (\Answered))`, `* 3 FETCH (UID 3 FLAGS (\Draft))`}
	if got := noop(c2, r2); !slices.Equal(got, want) {
		t.Errorf("other session: got %q, want %q", got, want)
	}
}

// TestSessionTrackerTakeMailboxFlags: the FLAGS updates queued for a
// session are taken out (the last one's flags returned), the rest of its
// queue and other sessions' are left alone (Posthouse patch).
func TestSessionTrackerTakeMailboxFlags(t *testing.T) {
	mailbox := imapserver.NewMailboxTracker(3)
	mine, other := mailbox.NewSession(), mailbox.NewSession()
	defer mine.Close()
	defer other.Close()
	if got := mine.TakeMailboxFlags(); got != nil {
		t.Errorf("empty queue: %v", got)
	}
	mailbox.QueueMailboxFlags([]imap.Flag{"$A"})
	mailbox.QueueNumMessages(4)
	mailbox.QueueMailboxFlags([]imap.Flag{"$A", "$B"})
	if got := mine.TakeMailboxFlags(); !slices.Equal(got, []imap.Flag{"$A", "$B"}) {
		t.Errorf("took %v, want the last FLAGS", got)
	}
	if got := mine.TakeMailboxFlags(); got != nil {
		t.Errorf("taken twice: %v", got)
	}
	if got := other.TakeMailboxFlags(); !slices.Equal(got, []imap.Flag{"$A", "$B"}) {
		t.Errorf("other session took %v", got)
	}
	if n := mine.NumMessages(); n != 3 {
		t.Errorf("NumMessages %d before the poll", n)
	}
}
