package imapserver_test

import (
	"bufio"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// TestCommandDone: Options.CommandDone hears every command by its
// dispatched name (UID forms included, unknown ones as sent), after its
// tagged response is out (Posthouse patch).
func TestCommandDone(t *testing.T) {
	user := imapmemserver.NewUser("user", "pass")
	user.Create("INBOX", nil)
	var mu sync.Mutex
	var names []string
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return imapmemserver.NewUserSession(user), &imapserver.GreetingData{PreAuth: true}, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		CommandDone: func(name string, dur time.Duration) {
			if dur < 0 {
				t.Errorf("%s: negative duration", name)
			}
			mu.Lock()
			names = append(names, name)
			mu.Unlock()
		},
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
	for _, cmd := range []string{"A1 NOOP", "A2 select INBOX", "A3 UID FETCH 1:* FLAGS", "A4 XYZZY"} {
		conn.Write([]byte(cmd + "\r\n"))
		tag, _, _ := strings.Cut(cmd, " ")
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			if strings.HasPrefix(l, tag+" ") {
				break
			}
		}
	}
	// The hook runs just after the response is written: wait for it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(names)
		mu.Unlock()
		if n >= 4 || time.Now().After(deadline) {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"NOOP", "SELECT", "UID FETCH", "XYZZY"}; !slices.Equal(names, want) {
		t.Fatalf("CommandDone heard %q, want %q", names, want)
	}
}
