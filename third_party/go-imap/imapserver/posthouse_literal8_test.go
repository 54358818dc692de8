package imapserver_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// binarySession records whether APPEND's literal was a literal8.
type binarySession struct {
	*imapmemserver.UserSession
	binary chan bool
}

func (s *binarySession) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	s.binary <- options.Binary
	return s.UserSession.Append(mailbox, r, options)
}

// TestAppendLiteral8 (Posthouse patch): AppendOptions.Binary tells a
// literal8 from a plain literal.
func TestAppendLiteral8(t *testing.T) {
	user := imapmemserver.NewUser("user", "pass")
	user.Create("INBOX", nil)
	sess := &binarySession{UserSession: imapmemserver.NewUserSession(user), binary: make(chan bool, 2)}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return sess, &imapserver.GreetingData{PreAuth: true}, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapBinary: {}, imap.CapLiteralPlus: {}},
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
	for _, tc := range []struct {
		cmd    string
		binary bool
	}{
		{"A1 APPEND INBOX ~{6+}\r\na\x00b\r\n\r\n", true},
		{"A2 APPEND INBOX {6+}\r\na: b\r\n\r\n", false},
	} {
		conn.Write([]byte(tc.cmd))
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(l, tc.cmd[:3]) {
				if !strings.Contains(l, "OK") {
					t.Fatalf("%q: %q", tc.cmd, l)
				}
				break
			}
		}
		if got := <-sess.binary; got != tc.binary {
			t.Errorf("%q: Binary %v, want %v", tc.cmd, got, tc.binary)
		}
	}
}
