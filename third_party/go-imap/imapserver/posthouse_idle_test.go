package imapserver_test

import (
	"bufio"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// idleSession records whether Close was called while its Idle still ran.
type idleSession struct {
	*imapmemserver.UserSession
	idling      atomic.Bool
	idleStarted chan struct{}
	closing     chan struct{}
	closed      chan bool // Close sends whether Idle was still running
}

func (s *idleSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	s.idling.Store(true)
	defer s.idling.Store(false)
	close(s.idleStarted)
	<-stop
	// Linger after stop, as a real Idle finishing its last write does,
	// so that a Close which does not wait for Idle overlaps with it.
	select {
	case <-s.closing:
	case <-time.After(100 * time.Millisecond):
	}
	return nil
}

func (s *idleSession) Close() error {
	running := s.idling.Load()
	close(s.closing)
	s.closed <- running
	return s.UserSession.Close()
}

// TestIdleDroppedConnWaitsForIdle: when the connection drops during IDLE,
// the session is closed only after its Idle has returned (Posthouse patch;
// upstream closed it while Idle still ran, a data race).
func TestIdleDroppedConnWaitsForIdle(t *testing.T) {
	user := imapmemserver.NewUser("user", "pass")
	sess := &idleSession{
		UserSession: imapmemserver.NewUserSession(user),
		idleStarted: make(chan struct{}),
		closing:     make(chan struct{}),
		closed:      make(chan bool, 1),
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return sess, &imapserver.GreetingData{PreAuth: true}, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIdle: {}},
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
	if _, err := conn.Write([]byte("A1 IDLE\r\n")); err != nil {
		t.Fatal(err)
	}
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q %v", l, err)
	}
	<-sess.idleStarted
	conn.Close()

	select {
	case running := <-sess.closed:
		if running {
			t.Errorf("session closed while its Idle was still running")
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("session not closed after the connection dropped")
	}
}
