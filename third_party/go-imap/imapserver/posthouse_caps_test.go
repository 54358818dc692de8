package imapserver_test

import (
	"net"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// TestSessionOwnCaps: a capability this package does not know is listed
// once the client is authenticated, not before (Posthouse patch).
func TestSessionOwnCaps(t *testing.T) {
	user := imapmemserver.NewUser("user", "pass")
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return imapmemserver.NewUserSession(user), nil, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, "X-POSTHOUSE-B": {}, "X-POSTHOUSE-A": {}},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	c, err := imapclient.DialInsecure(ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if caps.Has("X-POSTHOUSE-A") {
		t.Errorf("session capability listed before login: %v", caps)
	}
	if err := c.Login("user", "pass").Wait(); err != nil {
		t.Fatal(err)
	}
	if caps, err = c.Capability().Wait(); err != nil {
		t.Fatal(err)
	}
	if !caps.Has("X-POSTHOUSE-A") || !caps.Has("X-POSTHOUSE-B") {
		t.Errorf("session capabilities missing after login: %v", caps)
	}
}
