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

// writeCountingListener counts the Write calls on the connections it
// accepts: each is one flush of the server's buffered writer.
type writeCountingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l writeCountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return writeCountingConn{Conn: c, writes: l.writes}, nil
}

type writeCountingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c writeCountingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestFetchStoreResponsesBatched: the untagged FETCH responses of a FETCH or
// STORE command go out in a few writes, flushed by the tagged reply, not one
// write per message (Posthouse patch).
func TestFetchStoreResponsesBatched(t *testing.T) {
	const n = 200
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
	var writes atomic.Int64
	go srv.Serve(writeCountingListener{Listener: ln, writes: &writes})
	t.Cleanup(func() { srv.Close() })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	// run sends one command and returns its untagged FETCH lines.
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
	for i, cmd := range []string{"FETCH 1:* (FLAGS)", "UID FETCH 1:* (UID FLAGS)", `STORE 1:* +FLAGS (\Seen)`} {
		before := writes.Load()
		fetches := run(fmt.Sprintf("B%d", i), cmd)
		// The server wrote everything before the client read the tagged
		// reply, so the count is complete.
		got := writes.Load() - before
		if fetches != n {
			t.Errorf("%s: %d FETCH responses, want %d", cmd, fetches, n)
		}
		// About 6 KiB of responses: two flushes of the 4 KiB buffer and
		// the tagged reply; upstream made one write per response.
		if got > 10 {
			t.Errorf("%s: %d writes for %d responses", cmd, got, fetches)
		}
	}
}
