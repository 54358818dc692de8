package imapd

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestShutdownSaysBye: Shutdown sends BYE to an idle client, to one in
// IDLE, and ends with no session left.
func TestShutdownSaysBye(t *testing.T) {
	ts := newTestServer(t)
	a := ts.raw(t)
	a.login("alice@example.org", "alicepw")
	b := ts.raw(t)
	b.login("bob@example.org", "bobpw")
	b.mustOK("SELECT INBOX")
	b.send("I1 IDLE\r\n")
	b.line()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, rc := range []*rawConn{a, b} {
		if l := rc.line(); !strings.HasPrefix(l, "* BYE") {
			t.Errorf("want BYE, got %q", l)
		}
	}
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		t.Errorf("still accepting after Shutdown")
	}
}

// TestNoGoroutineLeak runs sessions through every state, drops some
// connections mid-command, shuts down, and checks the goroutine count comes
// back to where it was.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("sessions", func(t *testing.T) {
		ts := newTestServer(t)
		ts.deliver(t, "alice@example.org", "", testMessage(1))
		for i := 0; i < 10; i++ {
			rc := ts.raw(t)
			rc.login("alice@example.org", "alicepw")
			rc.mustOK("SELECT INBOX")
			rc.mustOK("FETCH 1 BODY.PEEK[]")
			switch i % 3 {
			case 0:
				rc.mustOK("LOGOUT")
			case 1:
				rc.send("I IDLE\r\n")
				rc.line()
			case 2:
				rc.send("A APPEND INBOX {100}\r\n")
				rc.line()
				rc.send("partial")
			}
			rc.conn.Close()
		}
		c := ts.client(t, "bob@example.org", "bobpw", nil)
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}) // the subtest's cleanups close the store too
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before+2 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d before, %d after\n%s", before, n, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIdleTimeouts: a silent client gets "* BYE" after the login timeout
// before authentication and after the idle timeout once logged in.
func TestIdleTimeouts(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.LoginTimeout = 200 * time.Millisecond
		o.IdleTimeout = 400 * time.Millisecond
	})
	pre := ts.raw(t)
	if l := pre.line(); !strings.HasPrefix(l, "* BYE Autologout") {
		t.Errorf("before login: %q", l)
	}
	post := ts.raw(t)
	post.login("alice@example.org", "alicepw")
	post.mustOK("SELECT INBOX")
	post.send("I1 IDLE\r\n")
	post.line()
	if l := post.line(); !strings.HasPrefix(l, "* BYE") {
		t.Errorf("in IDLE: %q", l)
	}
}
