//go:build linux

package imapserver_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// unwrapListener hands out connections behind a wrapper that only
// NetConn reaches, as TLS and the PROXY protocol do.
type unwrapListener struct{ net.Listener }

type wrappedConn struct{ inner net.Conn }

func (w wrappedConn) Read(b []byte) (int, error)         { return w.inner.Read(b) }
func (w wrappedConn) Write(b []byte) (int, error)        { return w.inner.Write(b) }
func (w wrappedConn) Close() error                       { return w.inner.Close() }
func (w wrappedConn) LocalAddr() net.Addr                { return w.inner.LocalAddr() }
func (w wrappedConn) RemoteAddr() net.Addr               { return w.inner.RemoteAddr() }
func (w wrappedConn) SetDeadline(t time.Time) error      { return w.inner.SetDeadline(t) }
func (w wrappedConn) SetReadDeadline(t time.Time) error  { return w.inner.SetReadDeadline(t) }
func (w wrappedConn) SetWriteDeadline(t time.Time) error { return w.inner.SetWriteDeadline(t) }
func (w wrappedConn) NetConn() net.Conn                  { return w.inner }

func (l unwrapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrappedConn{c}, nil
}

// TestLiteralQuickAck: after the continuation request of a synchronizing
// literal, the server's socket is told to acknowledge at once
// (TCP_QUICKACK), on a bare TCP connection and through a wrapper reached
// by NetConn; a command without a literal does not touch it.
func TestLiteralQuickAck(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		t.Run(fmt.Sprintf("wrapped=%v", wrap), func(t *testing.T) {
			user := imapmemserver.NewUser("user", "pass")
			if err := user.Create("INBOX", nil); err != nil {
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
			var l net.Listener = ln
			if wrap {
				l = unwrapListener{ln}
			}
			go srv.Serve(l)
			t.Cleanup(func() { srv.Close() })
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(conn)
			readUntil := func(prefix string) {
				t.Helper()
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						t.Fatal(err)
					}
					if strings.HasPrefix(l, prefix) {
						return
					}
				}
			}
			readUntil("* PREAUTH")
			before := imapserver.QuickAcks.Load()
			fmt.Fprintf(conn, "A1 SELECT INBOX\r\n")
			readUntil("A1 OK")
			if n := imapserver.QuickAcks.Load() - before; n != 0 {
				t.Errorf("SELECT set TCP_QUICKACK %d times", n)
			}
			msg := "Subject: a\r\n\r\nbody\r\n"
			fmt.Fprintf(conn, "A2 APPEND INBOX {%d}\r\n", len(msg))
			readUntil("+ ")
			// The literal and the CRLF in two writes, as imaplib sends them.
			conn.Write([]byte(msg))
			conn.Write([]byte("\r\n"))
			readUntil("A2 OK")
			if n := imapserver.QuickAcks.Load() - before; n != 1 {
				t.Errorf("APPEND with a literal set TCP_QUICKACK %d times, want 1", n)
			}
		})
	}
}
