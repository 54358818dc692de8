package server

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posthouse/posthouse/auth/limit"
)

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

func busy(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(c, "421 busy\r\n")
	c.Close()
}

// acceptLoop hands accepted conns to a channel until Accept fails.
func acceptLoop(ln net.Listener) (<-chan net.Conn, <-chan error) {
	conns := make(chan net.Conn, 16)
	errc := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				errc <- err
				return
			}
			conns <- c
		}
	}()
	return conns, errc
}

func TestListenerRefusesOverLimit(t *testing.T) {
	before := runtime.NumGoroutine()
	c := limit.NewConns(1, 10)
	ln := Listener(listen(t), c, busy)
	conns, errc := acceptLoop(ln)
	addr := ln.Addr().String()

	c1 := dial(t, addr)
	s1 := <-conns
	if s1.RemoteAddr().String() != c1.LocalAddr().String() {
		t.Fatalf("accepted %v, dialled from %v", s1.RemoteAddr(), c1.LocalAddr())
	}

	// Over the per-IP limit: the client reads the refusal, then EOF, and
	// the server's Accept never sees the connection.
	for i := 0; i < 3; i++ {
		c2 := dial(t, addr)
		line, err := bufio.NewReader(c2).ReadString('\n')
		if err != nil || line != "421 busy\r\n" {
			t.Fatalf("refused client read %q, %v", line, err)
		}
		if n, err := c2.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("refused connection not closed: %d, %v", n, err)
		}
	}
	select {
	case s := <-conns:
		t.Fatalf("over-limit connection %v reached Accept", s.RemoteAddr())
	default:
	}

	// Closing the accepted conn (twice: idempotent) frees the slot, and
	// Accept keeps going after the refusals.
	s1.Close()
	s1.Close()
	waitFor(t, "slot release", func() bool { total, _ := c.Open(RemoteAddr(s1)); return total == 0 })
	c3 := dial(t, addr)
	s3 := <-conns
	if s3.RemoteAddr().String() != c3.LocalAddr().String() {
		t.Fatalf("accepted %v, dialled from %v", s3.RemoteAddr(), c3.LocalAddr())
	}
	if _, ok := s3.(interface{ NetConn() net.Conn }).NetConn().(*net.TCPConn); !ok {
		t.Fatal("NetConn does not give the TCP connection")
	}
	s3.Close()

	ln.Close()
	if err := <-errc; err == nil {
		t.Fatal("Accept after Close returned no error")
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestListenerCloseCutsRefusals(t *testing.T) {
	before := runtime.NumGoroutine()
	c := limit.NewConns(0, 1)
	var started, finished atomic.Int32
	var mu sync.Mutex
	refused := map[string]bool{}
	// A refuse that would hang: it reads from a client that never writes.
	hang := func(conn net.Conn) {
		mu.Lock()
		refused[conn.RemoteAddr().String()] = true
		mu.Unlock()
		started.Add(1)
		defer finished.Add(1)
		conn.SetDeadline(time.Now().Add(time.Hour))
		conn.Read(make([]byte, 1))
	}
	ln := Listener(listen(t), c, hang)
	conns, errc := acceptLoop(ln)
	addr := ln.Addr().String()
	dial(t, addr)
	s1 := <-conns
	defer s1.Close()

	// More refusals than run at once: the surplus is closed at once.
	const n = maxRefusing + 6
	clients := make([]net.Conn, n)
	for i := range clients {
		clients[i] = dial(t, addr)
	}
	waitFor(t, "refusals to start", func() bool { return started.Load() == maxRefusing })
	closedEarly := 0
	for _, cl := range clients {
		mu.Lock()
		r := refused[cl.LocalAddr().String()]
		mu.Unlock()
		if r {
			continue
		}
		if _, err := cl.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("surplus connection: %v, want EOF", err)
		}
		closedEarly++
	}
	if closedEarly != n-maxRefusing {
		t.Fatalf("%d connections closed without refuse, want %d", closedEarly, n-maxRefusing)
	}
	if got := started.Load(); got != maxRefusing {
		t.Fatalf("%d refusals running, want at most %d", got, maxRefusing)
	}

	// Close cuts the hanging refusals and waits for them.
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if got := finished.Load(); got != maxRefusing {
		t.Fatalf("Close returned with %d of %d refusals still running", maxRefusing-got, maxRefusing)
	}
	<-errc
	s1.Close()
	for _, cl := range clients {
		cl.Close()
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestListenerNilRefuse(t *testing.T) {
	c := limit.NewConns(1, 0)
	ln := Listener(listen(t), c, nil)
	defer ln.Close()
	conns, _ := acceptLoop(ln)
	dial(t, ln.Addr().String())
	s1 := <-conns
	defer s1.Close()
	c2 := dial(t, ln.Addr().String())
	if _, err := c2.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("over-limit connection: %v, want EOF", err)
	}
}

// TestListenerRefuseForgetsClose checks the connection is closed even when
// refuse forgets to.
func TestListenerRefuseForgetsClose(t *testing.T) {
	c := limit.NewConns(1, 0)
	ln := Listener(listen(t), c, func(conn net.Conn) { io.WriteString(conn, "busy\r\n") })
	defer ln.Close()
	conns, _ := acceptLoop(ln)
	dial(t, ln.Addr().String())
	s1 := <-conns
	defer s1.Close()
	c2 := dial(t, ln.Addr().String())
	b, err := io.ReadAll(c2)
	if err != nil || string(b) != "busy\r\n" {
		t.Fatalf("read %q, %v", b, err)
	}
}

func TestListenerNilConns(t *testing.T) {
	ln := Listener(listen(t), nil, nil)
	defer ln.Close()
	conns, _ := acceptLoop(ln)
	for i := 0; i < 3; i++ {
		dial(t, ln.Addr().String())
		s := <-conns
		defer s.Close()
	}
}

// dialFrom connects to addr from the loopback source address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// TestListenerRefusalAndSlot checks that refuse learns why (rate or slots)
// and that accepted connections carry their Slot, which eviction reaches.
func TestListenerRefusalAndSlot(t *testing.T) {
	clk := newClock()
	c := limit.New(limit.Options{PerIP: 2, Total: 3, Rate: 3, Now: clk.now})
	ln := Listener(listen(t), c, func(conn net.Conn) {
		io.WriteString(conn, Refusal(conn).Error()+"\r\n")
	})
	defer ln.Close()
	conns, _ := acceptLoop(ln)
	addr := ln.Addr().String()
	refusal := func(src string) string {
		t.Helper()
		line, err := bufio.NewReader(dialFrom(t, src, addr)).ReadString('\n')
		if err != nil {
			t.Fatalf("refused client from %s: %v", src, err)
		}
		return line
	}

	dialFrom(t, "127.0.0.2", addr)
	s1 := <-conns
	defer s1.Close()
	slot := SlotOf(s1)
	if slot == nil || !slot.Held() {
		t.Fatal("accepted connection has no held Slot")
	}
	var evicted atomic.Bool
	slot.SetEvict(func() { evicted.Store(true) })
	dialFrom(t, "127.0.0.2", addr)
	s2 := <-conns
	defer s2.Close()
	if got := refusal("127.0.0.2"); got != limit.ErrTooManyConns.Error()+"\r\n" {
		t.Fatalf("third from one address: %q", got)
	}
	if got := refusal("127.0.0.2"); got != limit.ErrRate.Error()+"\r\n" {
		t.Fatalf("fourth in a minute: %q", got)
	}
	dialFrom(t, "127.0.0.3", addr)
	s3 := <-conns
	defer s3.Close()
	// Full (2+1). A newcomer from .4 holds 0, .2 holds 2: s1, the only
	// evictable one, is handed over.
	dialFrom(t, "127.0.0.4", addr)
	s4 := <-conns
	defer s4.Close()
	if !evicted.Load() || slot.Held() {
		t.Fatalf("evicted=%v held=%v, want s1 evicted", evicted.Load(), slot.Held())
	}
	if SlotOf(s4) == nil {
		t.Fatal("no Slot")
	}
	if Refusal(s4) != nil {
		t.Fatal("Refusal of an accepted connection")
	}
}

// clock is a movable clock for limit.Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
