package imapserver_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// deadlineListener records the write deadlines set on the connections it
// accepts.
type deadlineListener struct {
	net.Listener
	sets     *atomic.Int64
	lastZero *atomic.Bool
}

func (l deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return deadlineConn{Conn: c, l: l}, nil
}

type deadlineConn struct {
	net.Conn
	l deadlineListener
}

func (c deadlineConn) SetWriteDeadline(t time.Time) error {
	c.l.sets.Add(1)
	c.l.lastZero.Store(t.IsZero())
	return c.Conn.SetWriteDeadline(t)
}

// TestWriteDeadlineKept: a FETCH of many messages sets the write deadline
// once, not twice per response, and the deadline is never cleared
// (Posthouse patch).
func TestWriteDeadlineKept(t *testing.T) {
	const n = 300
	user := imapmemserver.NewUser("user", "pass")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("Subject: message %d\r\n\r\nbody\r\n", i)
		if _, err := user.Append("INBOX", bytes.NewReader([]byte(msg)), &imap.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return imapmemserver.NewUserSession(user), &imapserver.GreetingData{PreAuth: true}, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var sets atomic.Int64
	var lastZero atomic.Bool
	go srv.Serve(deadlineListener{Listener: ln, sets: &sets, lastZero: &lastZero})
	t.Cleanup(func() { srv.Close() })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	run := func(tag, cmd string) int {
		t.Helper()
		if _, err := fmt.Fprintf(conn, "%s %s\r\n", tag, cmd); err != nil {
			t.Fatal(err)
		}
		fetches := 0
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			if strings.HasPrefix(l, tag+" ") {
				if !strings.HasPrefix(l, tag+" OK") {
					t.Fatalf("%s: %q", cmd, l)
				}
				return fetches
			}
			if strings.Contains(l, " FETCH (") {
				fetches++
			}
		}
	}
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* PREAUTH") {
		t.Fatalf("greeting: %q %v", l, err)
	}
	run("A1", "SELECT INBOX")
	before := sets.Load()
	if got := run("A2", "FETCH 1:* (FLAGS)"); got != n {
		t.Fatalf("%d FETCH responses, want %d", got, n)
	}
	// Upstream set and cleared it for each of the n responses. A slow
	// machine may cross a second boundary once or twice.
	if got := sets.Load() - before; got > 3 {
		t.Errorf("%d write deadlines set for %d responses", got, n)
	}
	if lastZero.Load() {
		t.Error("the write deadline was cleared")
	}
}
