package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/posthouse/posthouse/auth/limit"
)

// testServer is a Lifecycle on a loopback listener whose Handle hands each
// connection to the test and reads it until either side closes it.
type testServer struct {
	l     *Lifecycle
	addr  string
	conns chan *Conn
	done  chan error
}

func newTestServer(t *testing.T, o Options) *testServer {
	t.Helper()
	ts := &testServer{conns: make(chan *Conn, 256), done: make(chan error, 1)}
	if o.Handle == nil {
		o.Handle = func(c *Conn) {
			ts.conns <- c
			io.Copy(io.Discard, c)
		}
	}
	l, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	ts.l, ts.addr = l, ln.Addr().String()
	go func() { ts.done <- l.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.Shutdown(ctx)
		if err := <-ts.done; err != ErrServerClosed {
			t.Errorf("Serve: %v, want ErrServerClosed", err)
		}
	})
	return ts
}

// next returns the next connection Handle got.
func (ts *testServer) next(t *testing.T) *Conn {
	t.Helper()
	select {
	case c := <-ts.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection reached Handle")
		return nil
	}
}

func busy(c net.Conn, why error) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(c, "421 busy\r\n")
	c.Close()
}

// tempErr is an accept error that says it is worth retrying.
type tempErr struct{}

func (tempErr) Error() string   { return "temporary" }
func (tempErr) Timeout() bool   { return true }
func (tempErr) Temporary() bool { return true }

// scriptListener returns its errors in order, then a connection, then
// blocks until closed.
type scriptListener struct {
	errs   []error
	conn   net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *scriptListener) Accept() (net.Conn, error) {
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		return nil, err
	}
	if c := l.conn; c != nil {
		l.conn = nil
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *scriptListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *scriptListener) Addr() net.Addr { return handoffAddr{} }

// TestAcceptBackoff: temporary accept errors (EMFILE, timeouts) back off,
// doubling up to a second, and keep the listener; the next connection
// resets the delay; any other error ends Serve.
func TestAcceptBackoff(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	var errs []error
	for i := 0; i < 10; i++ {
		errs = append(errs, emfile)
	}
	errs = append(errs, tempErr{})
	server, client := net.Pipe()
	defer client.Close()
	ln := &scriptListener{errs: errs, conn: server, closed: make(chan struct{})}

	got := make(chan *Conn, 1)
	l, err := New(Options{Handle: func(c *Conn) { got <- c; <-c.Done() }})
	if err != nil {
		t.Fatal(err)
	}
	var delays []time.Duration
	l.sleep = func(d time.Duration, _ <-chan struct{}) { delays = append(delays, d) }
	done := make(chan error, 1)
	go func() { done <- l.Serve(context.Background(), ln) }()
	c := <-got
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(delays, want) {
		t.Fatalf("delays %v, want %v", delays, want)
	}
	c.Close()
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}

	// A permanent error ends Serve and is returned.
	l2, _ := New(Options{Handle: func(*Conn) {}})
	bad := errors.New("listener broke")
	ln2 := &scriptListener{errs: []error{emfile, bad}, closed: make(chan struct{})}
	l2.sleep = func(time.Duration, <-chan struct{}) {}
	if err := l2.Serve(context.Background(), ln2); !errors.Is(err, bad) {
		t.Fatalf("Serve: %v, want %v", err, bad)
	}
}

// TestServeContext: Serve returns ctx.Err() when its context ends.
func TestServeContext(t *testing.T) {
	l, _ := New(Options{Handle: func(*Conn) {}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx, listen(t)) }()
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Serve: %v", err)
	}
	l.Shutdown(context.Background())
	if err := l.Serve(context.Background(), listen(t)); err != ErrServerClosed {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

// TestIDsUniqueAcrossListeners: two Lifecycles (as imap and imaps are)
// never hand out the same id, ids have one width, and they sort in the
// order they were issued.
func TestIDsUniqueAcrossListeners(t *testing.T) {
	a := newTestServer(t, Options{})
	b := newTestServer(t, Options{})
	const n = 40
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		for _, ts := range []*testServer{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", ts.addr)
				if err == nil {
					t.Cleanup(func() { c.Close() })
				}
			}()
		}
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		for _, ts := range []*testServer{a, b} {
			c := ts.next(t)
			if seen[c.ID()] {
				t.Fatalf("id %q issued twice", c.ID())
			}
			seen[c.ID()] = true
			if len(c.ID()) != idWidth {
				t.Fatalf("id %q: want %d characters", c.ID(), idWidth)
			}
		}
	}
	if a.l.Len() != n || b.l.Len() != n {
		t.Fatalf("registries hold %d and %d, want %d each", a.l.Len(), b.l.Len(), n)
	}

	prev := nextID()
	for i := 0; i < 10000; i++ {
		id := nextID()
		if id <= prev {
			t.Fatalf("id %q after %q", id, prev)
		}
		prev = id
	}
	if got := formatID(0); got != "00000000" {
		t.Fatalf("formatID(0) = %q", got)
	}
	if got := formatID(1<<40 - 1); got != "zzzzzzzz" {
		t.Fatalf("formatID(2^40-1) = %q", got)
	}
}

// TestRegistry: a connection is registered from accept until Handle
// returns, and its slot is held as long.
func TestRegistry(t *testing.T) {
	conns := limit.NewConns(0, 10)
	ts := newTestServer(t, Options{Conns: conns})
	cl := dial(t, ts.addr)
	c := ts.next(t)
	if ts.l.Len() != 1 || c.Slot() == nil || !c.Slot().Held() {
		t.Fatalf("Len %d, slot %v", ts.l.Len(), c.Slot())
	}
	if c.Remote().String() != "127.0.0.1" || c.RemoteAddr().String() != cl.LocalAddr().String() {
		t.Fatalf("remote %v / %v, dialled from %v", c.Remote(), c.RemoteAddr(), cl.LocalAddr())
	}
	if _, ok := c.NetConn().(*net.TCPConn); !ok {
		t.Fatal("NetConn does not give the TCP connection")
	}
	c.Close()
	c.Close()
	waitFor(t, "registry to empty", func() bool { return ts.l.Len() == 0 })
	if total, _ := conns.Open(c.Remote()); total != 0 {
		t.Fatalf("%d slots held after close", total)
	}
	if c.Context().Err() == nil {
		t.Fatal("connection context not cancelled after Handle returned")
	}
}

// TestPanicInHandle: a panicking session is logged, its connection
// closed, and the server goes on.
func TestPanicInHandle(t *testing.T) {
	var n atomic.Int32
	ts := newTestServer(t, Options{Handle: func(c *Conn) {
		if n.Add(1) == 1 {
			panic("boom")
		}
		io.WriteString(c, "hello\r\n")
	}})
	if _, err := dial(t, ts.addr).Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("panicked connection: %v, want EOF", err)
	}
	b, _ := io.ReadAll(dial(t, ts.addr))
	if string(b) != "hello\r\n" {
		t.Fatalf("after a panic: %q", b)
	}
}

// TestShutdownPhases: phase 1 asks every session to stop; one that stops
// ends at once, one that ignores the request is cut when ctx ends (its
// renewed deadlines notwithstanding), and Shutdown waits for both.
func TestShutdownPhases(t *testing.T) {
	var ignorerErr error
	ignorerDone := make(chan struct{})
	ts := newTestServer(t, Options{Handle: func(c *Conn) {
		r := bufio.NewReader(c)
		line, _ := r.ReadString('\n')
		switch line {
		case "polite\r\n":
			stop := make(chan struct{})
			c.OnStop(func() {
				io.WriteString(c, "bye\r\n")
				close(stop)
			})
			io.WriteString(c, "ok\r\n")
			<-stop
		case "stubborn\r\n":
			c.OnStop(func() {}) // heard, ignored
			io.WriteString(c, "ok\r\n")
			defer close(ignorerDone)
			for {
				// A session renewing its deadline per command.
				c.SetReadDeadline(time.Now().Add(time.Hour))
				if _, err := r.ReadString('\n'); err != nil {
					ignorerErr = err
					return
				}
			}
		}
	}})
	polite, stubborn := dial(t, ts.addr), dial(t, ts.addr)
	pr, sr := bufio.NewReader(polite), bufio.NewReader(stubborn)
	io.WriteString(polite, "polite\r\n")
	io.WriteString(stubborn, "stubborn\r\n")
	for _, r := range []*bufio.Reader{pr, sr} {
		if l, err := r.ReadString('\n'); l != "ok\r\n" {
			t.Fatalf("got %q, %v", l, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	shut := make(chan error, 1)
	go func() { shut <- ts.l.Shutdown(ctx) }()

	// Phase 1: the polite one says goodbye and ends; Shutdown still waits
	// for the other.
	if l, err := pr.ReadString('\n'); l != "bye\r\n" {
		t.Fatalf("polite session: %q, %v", l, err)
	}
	if _, err := pr.ReadString('\n'); err != io.EOF {
		t.Fatalf("polite session not closed: %v", err)
	}
	waitFor(t, "polite session to end", func() bool { return ts.l.Len() == 1 })
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		t.Fatal("still accepting after Shutdown started")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a session left", err)
	default:
	}
	if ts.l.Context().Err() != nil {
		t.Fatal("base context cancelled in phase 1")
	}

	// Phase 2: the stubborn one is cut.
	cancel()
	if err := <-shut; err != context.Canceled {
		t.Fatalf("Shutdown: %v, want context.Canceled", err)
	}
	<-ignorerDone
	var ne net.Error
	if !errors.As(ignorerErr, &ne) || !ne.Timeout() {
		t.Fatalf("stubborn session ended with %v, want a timeout", ignorerErr)
	}
	if ts.l.Len() != 0 || ts.l.Context().Err() == nil {
		t.Fatalf("after Shutdown: %d live, base context %v", ts.l.Len(), ts.l.Context().Err())
	}
}

// TestStopBeforeOnStop: a session that registers its stop function after
// Shutdown started is asked at once.
func TestStopBeforeOnStop(t *testing.T) {
	release := make(chan struct{})
	asked := make(chan struct{})
	ts := newTestServer(t, Options{Handle: func(c *Conn) {
		<-release
		c.OnStop(func() { close(asked) })
		<-asked
	}})
	dial(t, ts.addr)
	waitFor(t, "connection", func() bool { return ts.l.Len() == 1 })
	shut := make(chan error, 1)
	go func() { shut <- ts.l.Shutdown(context.Background()) }()
	waitFor(t, "Shutdown to start", ts.l.Stopping)
	close(release)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

func TestRefusesOverLimit(t *testing.T) {
	before := runtime.NumGoroutine()
	conns := limit.NewConns(1, 10)
	ts := newTestServer(t, Options{Conns: conns, Refuse: busy})
	c1 := dial(t, ts.addr)
	s1 := ts.next(t)
	if s1.RemoteAddr().String() != c1.LocalAddr().String() {
		t.Fatalf("accepted %v, dialled from %v", s1.RemoteAddr(), c1.LocalAddr())
	}

	// Over the per-IP limit: the client reads the refusal, then EOF, and
	// Handle never sees the connection.
	for i := 0; i < 3; i++ {
		c2 := dial(t, ts.addr)
		line, err := bufio.NewReader(c2).ReadString('\n')
		if err != nil || line != "421 busy\r\n" {
			t.Fatalf("refused client read %q, %v", line, err)
		}
		if n, err := c2.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("refused connection not closed: %d, %v", n, err)
		}
	}
	select {
	case s := <-ts.conns:
		t.Fatalf("over-limit connection %v reached Handle", s.RemoteAddr())
	default:
	}

	// Closing the accepted conn frees the slot.
	s1.Close()
	waitFor(t, "slot release", func() bool { total, _ := conns.Open(s1.Remote()); return total == 0 })
	dial(t, ts.addr)
	ts.next(t).Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.l.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before+1 })
}

func TestShutdownCutsRefusals(t *testing.T) {
	var started, finished atomic.Int32
	var mu sync.Mutex
	refused := map[string]bool{}
	// A refuse that would hang: it reads from a client that never writes.
	hang := func(conn net.Conn, _ error) {
		mu.Lock()
		refused[conn.RemoteAddr().String()] = true
		mu.Unlock()
		started.Add(1)
		defer finished.Add(1)
		conn.SetDeadline(time.Now().Add(time.Hour))
		conn.Read(make([]byte, 1))
	}
	ts := newTestServer(t, Options{Conns: limit.NewConns(0, 1), Refuse: hang})
	dial(t, ts.addr)
	s1 := ts.next(t)

	// More refusals than run at once: the surplus is closed at once.
	const n = maxRefusing + 6
	clients := make([]net.Conn, n)
	for i := range clients {
		clients[i] = dial(t, ts.addr)
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

	// Shutdown cuts the hanging refusals in phase 1 and waits for them.
	s1.Close()
	if err := ts.l.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := finished.Load(); got != maxRefusing {
		t.Fatalf("Shutdown returned with %d of %d refusals still running", maxRefusing-got, maxRefusing)
	}
}

func TestNilRefuse(t *testing.T) {
	ts := newTestServer(t, Options{Conns: limit.NewConns(1, 0)})
	dial(t, ts.addr)
	ts.next(t)
	if _, err := dial(t, ts.addr).Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("over-limit connection: %v, want EOF", err)
	}
}

// TestRefuseForgetsClose: the connection is closed even when Refuse
// forgets to.
func TestRefuseForgetsClose(t *testing.T) {
	ts := newTestServer(t, Options{Conns: limit.NewConns(1, 0), Refuse: func(c net.Conn, _ error) { io.WriteString(c, "busy\r\n") }})
	dial(t, ts.addr)
	ts.next(t)
	b, err := io.ReadAll(dial(t, ts.addr))
	if err != nil || string(b) != "busy\r\n" {
		t.Fatalf("read %q, %v", b, err)
	}
}

func TestNilConns(t *testing.T) {
	ts := newTestServer(t, Options{})
	for i := 0; i < 3; i++ {
		dial(t, ts.addr)
		if c := ts.next(t); c.Slot() != nil {
			t.Fatal("a slot without limits")
		}
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

// TestRefusalAndSlot: Refuse learns why (rate or slots), and accepted
// connections carry their Slot, which eviction reaches.
func TestRefusalAndSlot(t *testing.T) {
	clk := newClock()
	conns := limit.New(limit.Options{PerIP: 2, Total: 3, Rate: 3, Now: clk.now})
	ts := newTestServer(t, Options{Conns: conns, Refuse: func(c net.Conn, why error) {
		io.WriteString(c, why.Error()+"\r\n")
	}})
	refusal := func(src string) string {
		t.Helper()
		line, err := bufio.NewReader(dialFrom(t, src, ts.addr)).ReadString('\n')
		if err != nil {
			t.Fatalf("refused client from %s: %v", src, err)
		}
		return line
	}

	dialFrom(t, "127.0.0.2", ts.addr)
	s1 := ts.next(t)
	slot := s1.Slot()
	if slot == nil || !slot.Held() {
		t.Fatal("accepted connection has no held Slot")
	}
	var evicted atomic.Bool
	slot.SetEvict(func() { evicted.Store(true) })
	dialFrom(t, "127.0.0.2", ts.addr)
	ts.next(t)
	if got := refusal("127.0.0.2"); got != limit.ErrTooManyConns.Error()+"\r\n" {
		t.Fatalf("third from one address: %q", got)
	}
	if got := refusal("127.0.0.2"); got != limit.ErrRate.Error()+"\r\n" {
		t.Fatalf("fourth in a minute: %q", got)
	}
	dialFrom(t, "127.0.0.3", ts.addr)
	ts.next(t)
	// Full (2+1). A newcomer from .4 holds 0, .2 holds 2: s1, the only
	// evictable one, is handed over.
	dialFrom(t, "127.0.0.4", ts.addr)
	if ts.next(t).Slot() == nil {
		t.Fatal("no Slot")
	}
	if !evicted.Load() || slot.Held() {
		t.Fatalf("evicted=%v held=%v, want s1 evicted", evicted.Load(), slot.Held())
	}
}

// TestHandoff: a library's own accept loop gets the connections Give
// hands it, and ends with net.ErrClosed after Close.
func TestHandoff(t *testing.T) {
	h := NewHandoff()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		if !h.Give(a) {
			t.Error("Give refused on an open Handoff")
		}
	}()
	c, err := h.Accept()
	if err != nil || c != a {
		t.Fatalf("Accept: %v, %v", c, err)
	}
	h.Close()
	h.Close()
	if _, err := h.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if h.Give(b) {
		t.Fatal("Give succeeded after Close")
	}
	if fmt.Sprint(h.Addr()) != "handoff" {
		t.Fatalf("Addr %v", h.Addr())
	}
}

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
