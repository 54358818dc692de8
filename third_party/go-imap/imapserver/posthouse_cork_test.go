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

// TestCommandResponsesCorked: the untagged responses of a command go out
// in one write with its tagged reply (SELECT's seven lines, LIST, STATUS),
// while a continuation request (APPEND's literal, IDLE) is written at once,
// since the client waits for it (Posthouse patch).
func TestCommandResponsesCorked(t *testing.T) {
	user := imapmemserver.NewUser("user", "pass")
	for _, name := range []string{"INBOX", "Archive", "Sent"} {
		if err := user.Create(name, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := user.Append("INBOX", bytes.NewReader([]byte("Subject: a\r\n\r\nbody\r\n")), &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
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
	readLine := func(what string) string {
		t.Helper()
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return l
	}
	// run sends a command and reads to its tagged OK; it returns the
	// untagged lines and the writes the server made for them.
	run := func(tag, cmd string) (lines int, w int64) {
		t.Helper()
		before := writes.Load()
		fmt.Fprintf(conn, "%s %s\r\n", tag, cmd)
		for {
			l := readLine(cmd)
			if strings.HasPrefix(l, tag+" ") {
				if !strings.HasPrefix(l, tag+" OK") {
					t.Fatalf("%s: %q", cmd, l)
				}
				return lines, writes.Load() - before
			}
			lines++
		}
	}
	if l := readLine("greeting"); !strings.HasPrefix(l, "* PREAUTH") {
		t.Fatalf("greeting %q", l)
	}
	for i, cmd := range []string{"SELECT INBOX", `LIST "" *`, "STATUS Archive (MESSAGES UIDNEXT UNSEEN)", "NOOP"} {
		lines, w := run(fmt.Sprintf("A%d", i), cmd)
		if w != 1 {
			t.Errorf("%s: %d untagged lines and the tagged reply in %d writes, want 1", cmd, lines, w)
		}
		if cmd != "NOOP" && lines == 0 {
			t.Errorf("%s: no untagged response", cmd)
		}
	}

	// APPEND with a synchronizing literal: the continuation comes before
	// the client sends the message.
	msg := "Subject: b\r\n\r\nsecond\r\n"
	fmt.Fprintf(conn, "B1 APPEND INBOX {%d}\r\n", len(msg))
	if l := readLine("APPEND continuation"); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("APPEND: %q, want a continuation request", l)
	}
	fmt.Fprintf(conn, "%s\r\n", msg)
	for l := readLine("APPEND"); !strings.HasPrefix(l, "B1 "); l = readLine("APPEND") {
	}

	// IDLE: the continuation arrives while the command runs, and DONE
	// ends it with a tagged OK.
	fmt.Fprintf(conn, "C1 IDLE\r\n")
	if l := readLine("IDLE"); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q, want a continuation request", l)
	}
	fmt.Fprintf(conn, "DONE\r\n")
	for l := readLine("IDLE end"); !strings.HasPrefix(l, "C1 "); l = readLine("IDLE end") {
	}
	if lines, w := run("D1", "FETCH 1:* (FLAGS)"); lines != 2 || w != 1 {
		t.Errorf("FETCH after IDLE: %d responses in %d writes, want 2 in 1", lines, w)
	}
}
