package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// logBuf is a concurrency-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// newTestListener wraps a loopback listener on 127.0.0.1 trusting
// trusted; it returns the listener and its log.
func newTestListener(t *testing.T, o Options, trusted ...string) (*Listener, *logBuf) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range trusted {
		o.Trusted = append(o.Trusted, netip.MustParsePrefix(s))
	}
	logs := &logBuf{}
	o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	l := Listen(inner, o)
	t.Cleanup(func() { l.Close() })
	return l, logs
}

// dialFrom connects to l from the loopback address src.
func dialFrom(t *testing.T, l net.Listener, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// acceptOne accepts with a deadline.
func acceptOne(t *testing.T, l net.Listener) (net.Conn, error) {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.c != nil {
			t.Cleanup(func() { r.c.Close() })
		}
		return r.c, r.err
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return")
		return nil, nil
	}
}

func v2Header(t *testing.T, cmd proxyproto.ProtocolVersionAndCommand, src, dst string) []byte {
	t.Helper()
	h := &proxyproto.Header{Version: 2, Command: cmd, TransportProtocol: proxyproto.TCPv4}
	if cmd == proxyproto.PROXY {
		s, d := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst))
		h.SourceAddr, h.DestinationAddr = s, d
		if s.IP.To4() == nil {
			h.TransportProtocol = proxyproto.TCPv6
		}
	} else {
		h.TransportProtocol = proxyproto.UNSPEC
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHeaders(t *testing.T) {
	for _, tc := range []struct {
		name       string
		header     func(t *testing.T) []byte
		wantRemote string // "" the connection's own
		wantProxy  bool
	}{
		{"v1 tcp4", func(*testing.T) []byte { return []byte("PROXY TCP4 198.51.100.7 192.0.2.1 40123 25\r\n") }, "198.51.100.7:40123", true},
		{"v1 tcp6", func(*testing.T) []byte { return []byte("PROXY TCP6 2001:db8::7 2001:db8::1 40123 993\r\n") }, "[2001:db8::7]:40123", true},
		{"v1 unknown", func(*testing.T) []byte { return []byte("PROXY UNKNOWN\r\n") }, "", false},
		{"v2 tcp4", func(t *testing.T) []byte { return v2Header(t, proxyproto.PROXY, "203.0.113.9:5555", "192.0.2.1:25") }, "203.0.113.9:5555", true},
		{"v2 tcp6", func(t *testing.T) []byte {
			return v2Header(t, proxyproto.PROXY, "[2001:db8::9]:5555", "[2001:db8::1]:993")
		}, "[2001:db8::9]:5555", true},
		{"v2 v4-mapped", func(t *testing.T) []byte {
			return v2Header(t, proxyproto.PROXY, "[::ffff:203.0.113.10]:1", "[::ffff:192.0.2.1]:25")
		}, "203.0.113.10:1", true},
		{"v2 local (health check)", func(t *testing.T) []byte { return v2Header(t, proxyproto.LOCAL, "", "") }, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newTestListener(t, Options{}, "127.0.0.0/8")
			c := dialFrom(t, l, "127.0.0.1")
			// The header and the client's first bytes in one write: what
			// follows the header must reach the session intact.
			if _, err := c.Write(append(tc.header(t), "EHLO client.example\r\n"...)); err != nil {
				t.Fatal(err)
			}
			sc, err := acceptOne(t, l)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.wantRemote
			if want == "" {
				want = c.LocalAddr().String()
			}
			if got := sc.RemoteAddr().String(); got != want {
				t.Errorf("RemoteAddr = %s, want %s", got, want)
			}
			pc := sc.(*Conn)
			if pc.Proxied() != tc.wantProxy {
				t.Errorf("Proxied = %v, want %v", pc.Proxied(), tc.wantProxy)
			}
			if got := pc.Source().String(); got != c.LocalAddr().String() {
				t.Errorf("Source = %s, want the load balancer's %s", got, c.LocalAddr())
			}
			if _, ok := pc.NetConn().(*net.TCPConn); !ok {
				t.Errorf("NetConn is a %T, want the socket's *net.TCPConn", pc.NetConn())
			}
			buf := make([]byte, 64)
			sc.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := io.ReadAtLeast(sc, buf, len("EHLO client.example\r\n"))
			if err != nil || string(buf[:n]) != "EHLO client.example\r\n" {
				t.Errorf("read after header: %q, %v", buf[:n], err)
			}
			// Later bytes come from the socket.
			io.WriteString(c, "QUIT\r\n")
			n, err = io.ReadAtLeast(sc, buf, 6)
			if err != nil || string(buf[:n]) != "QUIT\r\n" {
				t.Errorf("second read: %q, %v", buf[:n], err)
			}
		})
	}
}

func TestBadHeaderClosed(t *testing.T) {
	for _, tc := range []struct {
		name string
		send string
		want string // in the log line
	}{
		{"no header", "EHLO client.example\r\n", "signature not present"},
		{"garbled v1", "PROXY TCP4 not-an-address 192.0.2.1 1 25\r\n", "proxyproto"},
		{"v1 too long", "PROXY TCP4 " + strings.Repeat("1", 200) + "\r\n", "proxyproto"},
		{"v2 truncated", string(proxyproto.SIGV2) + "\x21\x11\x00", "before a complete PROXY header"},
		{"silence", "", "within the timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, logs := newTestListener(t, Options{HeaderTimeout: 200 * time.Millisecond}, "127.0.0.1/32")
			c := dialFrom(t, l, "127.0.0.1")
			io.WriteString(c, tc.send)
			if tc.name == "v2 truncated" {
				c.(*net.TCPConn).CloseWrite()
			}
			// The server closes: the client reads EOF (or a reset), never
			// a connection reaching Accept.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err) {
				t.Fatalf("client read: %v, want the connection closed", err)
			}
			waitFor(t, "the log line", func() bool {
				return strings.Contains(logs.String(), "no valid PROXY header") && strings.Contains(logs.String(), tc.want)
			})
			// The listener goes on: a good connection after it is served.
			good := dialFrom(t, l, "127.0.0.1")
			io.WriteString(good, "PROXY TCP4 198.51.100.1 192.0.2.1 1000 25\r\n")
			sc, err := acceptOne(t, l)
			if err != nil || sc.RemoteAddr().String() != "198.51.100.1:1000" {
				t.Fatalf("after a bad header: %v, %v", sc, err)
			}
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestUntrustedSourceRefused(t *testing.T) {
	l, logs := newTestListener(t, Options{}, "127.0.0.2/32", "10.0.0.0/8")
	// From 127.0.0.1, outside the trusted networks: closed, header or not,
	// and never accepted.
	c := dialFrom(t, l, "127.0.0.1")
	io.WriteString(c, "PROXY TCP4 198.51.100.7 192.0.2.1 40123 25\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("untrusted client read: %v, want the connection closed", err)
	}
	waitFor(t, "the refusal log line", func() bool {
		return strings.Contains(logs.String(), "not in proxy_networks") && strings.Contains(logs.String(), "127.0.0.1:")
	})
	// From 127.0.0.2, trusted: served with the header's address.
	tc := dialFrom(t, l, "127.0.0.2")
	io.WriteString(tc, "PROXY TCP4 198.51.100.8 192.0.2.1 40124 25\r\n")
	sc, err := acceptOne(t, l)
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.RemoteAddr().String(); got != "198.51.100.8:40124" {
		t.Errorf("RemoteAddr = %s", got)
	}
}

func TestNoTrustedNetworksRefusesAll(t *testing.T) {
	l, logs := newTestListener(t, Options{})
	c := dialFrom(t, l, "127.0.0.1")
	io.WriteString(c, "PROXY TCP4 198.51.100.7 192.0.2.1 40123 25\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read: %v, want the connection closed", err)
	}
	waitFor(t, "the refusal", func() bool { return strings.Contains(logs.String(), "not in proxy_networks") })
}

// A peer that stays silent does not hold up the ones behind it.
func TestSilentPeerDoesNotBlock(t *testing.T) {
	l, _ := newTestListener(t, Options{HeaderTimeout: time.Minute}, "127.0.0.1/32")
	silent := dialFrom(t, l, "127.0.0.1")
	_ = silent
	for i := range 5 {
		c := dialFrom(t, l, "127.0.0.1")
		io.WriteString(c, "PROXY TCP4 198.51.100.1 192.0.2.1 "+string(rune('1'+i))+" 25\r\n")
		if _, err := acceptOne(t, l); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeListener returns scripted results from Accept and counts calls.
type fakeListener struct {
	calls  atomic.Int32
	script chan func() (net.Conn, error)
	closed chan struct{}
	once   sync.Once
}

func (f *fakeListener) Accept() (net.Conn, error) {
	f.calls.Add(1)
	select {
	case fn := <-f.script:
		return fn()
	case <-f.closed:
		return nil, net.ErrClosed
	}
}
func (f *fakeListener) Close() error   { f.once.Do(func() { close(f.closed) }); return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// Accept errors reach the caller one per Accept, and the inner Accept is
// not called again until the caller asks: the caller's backoff paces a
// listener out of descriptors.
func TestAcceptErrorsPacedByCaller(t *testing.T) {
	f := &fakeListener{script: make(chan func() (net.Conn, error), 100), closed: make(chan struct{})}
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	for range 50 {
		f.script <- func() (net.Conn, error) { return nil, emfile }
	}
	l := Listen(f, Options{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	defer l.Close()
	for i := range 3 {
		_, err := l.Accept()
		if !errors.Is(err, syscall.EMFILE) {
			t.Fatalf("Accept %d: %v, want EMFILE", i, err)
		}
	}
	// The loop has made at most one call more than the three returned
	// (it is blocked handing the fourth error over).
	waitFor(t, "the loop to block", func() bool { return f.calls.Load() >= 4 })
	time.Sleep(50 * time.Millisecond) // a busy loop would show here
	if n := f.calls.Load(); n > 4 {
		t.Fatalf("inner Accept called %d times for 3 Accepts: not paced by the caller", n)
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// Close closes connections whose header is still awaited, and returns.
func TestCloseCutsPendingReads(t *testing.T) {
	l, _ := newTestListener(t, Options{HeaderTimeout: time.Minute}, "127.0.0.1/32")
	c := dialFrom(t, l, "127.0.0.1")
	time.Sleep(50 * time.Millisecond) // accepted, header read under way
	done := make(chan struct{})
	go func() { l.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with a header read pending")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("pending connection: %v, want closed", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// MaxPending bounds header reads in flight: beyond it, connections wait
// in the kernel's queue and are taken when a read ends.
func TestMaxPending(t *testing.T) {
	l, _ := newTestListener(t, Options{HeaderTimeout: 300 * time.Millisecond, MaxPending: 2}, "127.0.0.1/32")
	dialFrom(t, l, "127.0.0.1")
	dialFrom(t, l, "127.0.0.1") // two silent ones fill the slots
	c := dialFrom(t, l, "127.0.0.1")
	io.WriteString(c, "PROXY TCP4 198.51.100.3 192.0.2.1 3 25\r\n")
	// Served once the silent ones time out.
	sc, err := acceptOne(t, l)
	if err != nil || sc.RemoteAddr().String() != "198.51.100.3:3" {
		t.Fatalf("%v, %v", sc, err)
	}
}

// fakeConn feeds parse from a byte slice.
type fakeConn struct {
	net.Conn
	r io.Reader
}

func (f fakeConn) Read(b []byte) (int, error) { return f.r.Read(b) }
func (f fakeConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 198.51.100.7 192.0.2.1 40123 25\r\nEHLO x\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 40123 993\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	v2 := append([]byte(nil), proxyproto.SIGV2...)
	v2 = append(v2, 0x21, 0x11, 0, 12, 203, 0, 113, 9, 192, 0, 2, 1, 0x15, 0xb3, 0, 25)
	f.Add(v2)
	local := append(append([]byte(nil), proxyproto.SIGV2...), 0x20, 0x00, 0, 0)
	f.Add(local)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		c, err := parse(fakeConn{r: r}, bufio.NewReaderSize(r, readBuffer))
		if err != nil {
			return
		}
		a, ok := c.RemoteAddr().(*net.TCPAddr)
		if !ok || !a.AddrPort().Addr().IsValid() {
			t.Fatalf("accepted header gives remote %v", c.RemoteAddr())
		}
		if c.Proxied() && a.AddrPort().Addr().Is4In6() {
			t.Fatalf("remote %v left IPv4-mapped", a)
		}
		// What follows the header is delivered once, in order.
		rest, _ := io.ReadAll(io.LimitReader(c, int64(len(data))+1))
		if len(rest) > len(data) || !bytes.HasSuffix(data, rest) {
			t.Fatalf("bytes after the header %q are not a suffix of the input", rest)
		}
	})
}

// A connection closed before its first byte (a TCP health check) is
// closed quietly: a Debug line, no warning.
func TestEmptyConnectionQuiet(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	l := Listen(inner, Options{
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	defer l.Close()
	c := dialFrom(t, l, "127.0.0.1")
	c.Close()
	waitFor(t, "the debug line", func() bool { return strings.Contains(logs.String(), "closed before sending anything") })
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("a health check was warned about: %s", logs.String())
	}
}
