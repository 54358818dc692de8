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

// TestFetchBorrowsBigWriter: a FETCH of many messages goes out in 64 KiB
// writes, not 4 KiB ones, every response intact and in order, and the
// commands after it (a small FETCH, STORE, NOOP) work as before
// (Posthouse patch).
func TestFetchBorrowsBigWriter(t *testing.T) {
	const n = 3000
	user := imapmemserver.NewUser("user", "pass")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("Subject: message number %d with some words\r\n\r\nbody\r\n", i)
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
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* PREAUTH") {
		t.Fatalf("greeting: %q %v", l, err)
	}
	// run sends one command and returns its untagged lines and the bytes
	// of the response.
	run := func(tag, cmd string) ([]string, int) {
		t.Helper()
		if _, err := fmt.Fprintf(conn, "%s %s\r\n", tag, cmd); err != nil {
			t.Fatal(err)
		}
		var lines []string
		size := 0
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			size += len(l)
			if strings.HasPrefix(l, tag+" ") {
				if !strings.HasPrefix(l, tag+" OK") {
					t.Fatalf("%s: %q", cmd, l)
				}
				return lines, size
			}
			lines = append(lines, l)
		}
	}
	run("A1", "SELECT INBOX")
	for round := 0; round < 2; round++ {
		before := writes.Load()
		lines, size := run(fmt.Sprintf("B%d", round), "FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
		got := writes.Load() - before
		// Each response: its line up to the literal, the literal's two
		// lines (Subject and the blank line), then ")".
		if len(lines) != 4*n {
			t.Fatalf("FETCH: %d lines, want %d", len(lines), 4*n)
		}
		for i := 0; i < n; i++ {
			if !strings.HasPrefix(lines[4*i], fmt.Sprintf("* %d FETCH (UID %d ", i+1, i+1)) ||
				!strings.Contains(lines[4*i+1], fmt.Sprintf("message number %d ", i)) || lines[4*i+3] != ")\r\n" {
				t.Fatalf("response %d: %q", i+1, lines[4*i:4*i+4])
			}
		}
		// 4 KiB writes would be size/4096 of them.
		if max := int64(size/(32<<10)) + 4; got > max {
			t.Errorf("FETCH of %d bytes in %d writes, want at most %d", size, got, max)
		}
	}
	before := writes.Load()
	if lines, _ := run("C1", "FETCH 1:10 (FLAGS)"); len(lines) != 10 {
		t.Errorf("small FETCH: %q", lines)
	}
	if got := writes.Load() - before; got != 1 {
		t.Errorf("small FETCH in %d writes, want 1", got)
	}
	if lines, _ := run("C2", `STORE 1:100 +FLAGS (\Seen)`); len(lines) != 100 {
		t.Errorf("STORE: %d responses", len(lines))
	}
	run("C3", "NOOP")
}
