package smtpclient

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hostilePeer listens on a loopback address of its own (127.0.0.x) and
// runs serve for each connection; it returns a connected client socket.
func hostilePeer(t *testing.T, ip string, serve func(net.Conn)) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		ln.Close()
		<-done
	})
	return conn
}

// untilClosed reads and discards until the client goes away.
func untilClosed(c net.Conn) {
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// drip writes s one byte every interval, stopping at the first error;
// sent counts the bytes written.
func drip(c net.Conn, s string, interval time.Duration, sent *atomic.Int64) {
	for i := 0; i < len(s); i++ {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
		sent.Add(1)
		time.Sleep(interval)
	}
}

// answer reads a command line and writes reply; false when the client left.
func answer(br *bufio.Reader, c net.Conn, reply string) bool {
	if _, err := br.ReadString('\n'); err != nil {
		return false
	}
	_, err := c.Write([]byte(reply))
	return err == nil
}

// readBody reads a DATA body through the final ".".
func readBody(br *bufio.Reader) bool {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		if line == ".\r\n" {
			return true
		}
	}
}

func wantTimeout(t *testing.T, err error, waiting string, connection bool) {
	t.Helper()
	var te *TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("got %v, want a timeout waiting for %s", err, waiting)
	}
	if te.Waiting != waiting || te.Connection != connection {
		t.Fatalf("got %q (connection limit %v), want waiting for %q (connection limit %v)", te, te.Connection, waiting, connection)
	}
}

// short are timeouts a test can wait for.
var short = Timeouts{
	Greeting: 300 * time.Millisecond, Command: 300 * time.Millisecond,
	Mail: 300 * time.Millisecond, Rcpt: 300 * time.Millisecond,
	DataInit: 300 * time.Millisecond, DataBlock: 300 * time.Millisecond,
	DataDone: 300 * time.Millisecond, Connection: time.Minute,
}

func TestHostilePeerNeverGreets(t *testing.T) {
	conn := hostilePeer(t, "127.0.0.2", untilClosed)
	c := New(context.Background(), conn, "mx.silent.test", short)
	_, err := c.Greeting()
	wantTimeout(t, err, "greeting", false)
	if err.Error() != "timeout waiting for greeting" {
		t.Errorf("error text %q", err)
	}
}

// TestHostilePeerDripsGreeting: a byte every 20 ms would never trip an idle
// timeout of 300 ms, but the greeting's deadline is for the whole reply.
func TestHostilePeerDripsGreeting(t *testing.T) {
	const greeting = "220 mx.drip.test ESMTP at a very leisurely pace\r\n"
	var sent atomic.Int64
	conn := hostilePeer(t, "127.0.0.3", func(c net.Conn) {
		drip(c, greeting, 20*time.Millisecond, &sent)
		untilClosed(c)
	})
	c := New(context.Background(), conn, "mx.drip.test", short)
	_, err := c.Greeting()
	wantTimeout(t, err, "greeting", false)
	if n := sent.Load(); n < 2 || n >= int64(len(greeting)) {
		t.Errorf("peer wrote %d of %d bytes before the client gave up; want a cut mid-reply", n, len(greeting))
	}
}

func TestHostilePeerEndlessReply(t *testing.T) {
	tests := []struct{ name, reply string }{
		{"many short lines", strings.Repeat("220-"+strings.Repeat("x", 200)+"\r\n", 90) + "220 end\r\n"},
		{"more than 100 lines", strings.Repeat("220-x\r\n", 150) + "220 end\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := hostilePeer(t, "127.0.0.4", func(c net.Conn) {
				c.Write([]byte(tc.reply))
				untilClosed(c)
			})
			c := New(context.Background(), conn, "mx.long.test", short)
			if r, err := c.Greeting(); !errors.Is(err, ErrProtocol) {
				t.Fatalf("got %v, %v; want a protocol error", r.Code, err)
			}
		})
	}
}

// greetAndAccept plays a polite server up to and including the RCPT
// replies (no PIPELINING, so the client goes in lockstep).
func greetAndAccept(br *bufio.Reader, c net.Conn) bool {
	if _, err := c.Write([]byte("220 mx.test ESMTP\r\n")); err != nil {
		return false
	}
	return answer(br, c, "250-mx.test\r\n250 8BITMIME\r\n") &&
		answer(br, c, "250 2.1.0 ok\r\n") &&
		answer(br, c, "250 2.1.5 ok\r\n")
}

func TestHostilePeerStallsInData(t *testing.T) {
	tests := []struct {
		name    string
		serve   func(br *bufio.Reader, c net.Conn)
		waiting string
	}{
		{"no reply to DATA", func(br *bufio.Reader, c net.Conn) {
			br.ReadString('\n')
		}, "reply to DATA"},
		{"no reply to the end of data", func(br *bufio.Reader, c net.Conn) {
			answer(br, c, "354 go ahead\r\n")
			readBody(br)
		}, "reply to end of data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := hostilePeer(t, "127.0.0.5", func(c net.Conn) {
				br := bufio.NewReader(c)
				if greetAndAccept(br, c) {
					tc.serve(br, c)
				}
				untilClosed(c)
			})
			c := New(context.Background(), conn, "mx.stall.test", short)
			if _, err := c.Greeting(); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Hello("client.test"); err != nil {
				t.Fatal(err)
			}
			replies, err := c.Transaction("a@a.test", []string{"b@b.test"}, MailParams{}, strings.NewReader("Subject: x\r\n\r\nhi\r\n"))
			wantTimeout(t, err, tc.waiting, false)
			if replies[0].Code != 0 {
				t.Errorf("recipient has reply %v after a stall; want none", replies[0])
			}
		})
	}
}

// TestHostilePeerStopsReadingData: the peer says 354 and reads no more;
// once the socket buffers are full, the data block's deadline passes.
func TestHostilePeerStopsReadingData(t *testing.T) {
	cli, srv := net.Pipe() // no buffer: the first unread block stalls
	go func() {
		defer srv.Close()
		br := bufio.NewReader(srv)
		if greetAndAccept(br, srv) {
			answer(br, srv, "354 go ahead\r\n")
		}
		<-time.After(5 * time.Second)
	}()
	t.Cleanup(func() { cli.Close() })
	c := New(context.Background(), cli, "mx.deaf.test", short)
	if _, err := c.Greeting(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	body := strings.NewReader("Subject: x\r\n\r\n" + strings.Repeat("a line of the body\r\n", 10000))
	_, err := c.Transaction("a@a.test", []string{"b@b.test"}, MailParams{}, body)
	wantTimeout(t, err, "the server to read message data", false)
}

// TestHostilePeerConnectionLimit: every reply comes within its own
// deadline, but slowly; the connection's limit ends the conversation.
func TestHostilePeerConnectionLimit(t *testing.T) {
	conn := hostilePeer(t, "127.0.0.6", func(c net.Conn) {
		br := bufio.NewReader(c)
		var sent atomic.Int64
		drip(c, "220 mx.test\r\n", 10*time.Millisecond, &sent)
		for {
			if _, err := br.ReadString('\n'); err != nil {
				return
			}
			drip(c, "250 ok\r\n", 10*time.Millisecond, &sent)
		}
	})
	to := short
	to.Command, to.Connection = 10*time.Second, 400*time.Millisecond
	c := New(context.Background(), conn, "mx.slow.test", to)
	if _, err := c.Greeting(); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = c.Reset()
	}
	var te *TimeoutError
	if !errors.As(err, &te) || !te.Connection {
		t.Fatalf("got %v, want the connection's time limit", err)
	}
	if !strings.HasPrefix(te.Error(), "connection time limit reached waiting for ") {
		t.Errorf("error text %q", te)
	}
}
