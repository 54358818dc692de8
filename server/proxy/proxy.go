package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// Defaults of Options.
const (
	// DefaultHeaderTimeout: a load balancer sends its header as soon as
	// it has connected, before any byte of the client's.
	DefaultHeaderTimeout = 5 * time.Second
	// DefaultMaxPending bounds connections accepted but not yet handed
	// to the caller (each holds a descriptor and a goroutine); beyond it
	// the inner Accept waits.
	DefaultMaxPending = 64
	// readBuffer holds the header while it is parsed: a v1 header is at
	// most 107 bytes, and v2 is read with ReadByte/Discard/ReadFull, so any
	// size works; small, since a connection keeps what it held past the
	// header until the session has read it.
	readBuffer = 256
)

// ErrNotTrusted is the log reason of a connection from outside
// Options.Trusted.
var ErrNotTrusted = errors.New("source is not in proxy_networks")

// errEmpty: the peer closed without sending a byte (a TCP health check).
var errEmpty = errors.New("closed before sending anything")

// Options configure Listen.
type Options struct {
	// Trusted are the networks of the load balancers; connections from
	// anywhere else are closed. Required (none trusts nobody).
	Trusted []netip.Prefix
	// HeaderTimeout bounds the wait for the header; 0: DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// MaxPending bounds connections accepted and not yet returned by
	// Accept (header reads in flight included); 0: DefaultMaxPending.
	MaxPending int
	// Logger gets a Warn line per refused connection; it should carry
	// "proto".
	Logger *slog.Logger
}

// Listener is a net.Listener whose connections report the client address
// of their PROXY header. See the package doc.
type Listener struct {
	ln      net.Listener
	trusted []netip.Prefix
	timeout time.Duration
	log     *slog.Logger

	ready chan accepted
	sem   chan struct{}
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

type accepted struct {
	c   net.Conn
	err error
}

// Listen wraps ln and starts reading headers from the connections it
// accepts. Close stops it and closes ln.
func Listen(ln net.Listener, o Options) *Listener {
	if o.HeaderTimeout <= 0 {
		o.HeaderTimeout = DefaultHeaderTimeout
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Listener{
		ln:      ln,
		trusted: o.Trusted,
		timeout: o.HeaderTimeout,
		log:     o.Logger,
		ready:   make(chan accepted),
		sem:     make(chan struct{}, o.MaxPending),
		done:    make(chan struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// Accept returns the next connection whose header was read, or the inner
// listener's next error (net.ErrClosed once closed).
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case a := <-l.ready:
		return a.c, a.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close closes the inner listener, stops the header reads in flight
// (their connections are closed) and waits for them.
func (l *Listener) Close() error {
	err := net.ErrClosed
	l.once.Do(func() {
		close(l.done)
		err = l.ln.Close()
	})
	l.wg.Wait()
	return err
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// acceptLoop takes connections from the inner listener. An error goes to
// the next Accept call, and the loop waits for that call before trying
// again: the caller's backoff paces a listener out of descriptors.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return
		}
		nc, err := l.ln.Accept()
		if err != nil {
			<-l.sem
			select {
			case l.ready <- accepted{err: err}:
			case <-l.done:
				return
			}
			continue
		}
		src := addrOf(nc.RemoteAddr())
		if !l.isTrusted(src) {
			<-l.sem
			l.log.Warn("connection refused", "remote", nc.RemoteAddr().String(), "err", ErrNotTrusted)
			nc.Close()
			continue
		}
		l.wg.Add(1)
		go l.handshake(nc)
	}
}

func (l *Listener) isTrusted(a netip.Addr) bool {
	for _, p := range l.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// handshake reads nc's header and hands the connection to Accept, or
// closes it.
func (l *Listener) handshake(nc net.Conn) {
	defer l.wg.Done()
	stop := closeOnDone(l.done, nc)
	// The slot is held until the connection is handed over: while the
	// caller does not Accept (out of descriptors, at its budget), at most
	// MaxPending connections wait here rather than in the kernel's queue.
	defer func() { <-l.sem }()
	c, err := readHeader(nc, l.timeout)
	if !stop() {
		// Close was called while reading: the connection is already closed.
		return
	}
	if errors.Is(err, errEmpty) {
		// A TCP health check or a port probe: nothing to warn about.
		l.log.Debug("connection closed before sending anything", "remote", nc.RemoteAddr().String())
		nc.Close()
		return
	}
	if err != nil {
		l.log.Warn("connection closed: no valid PROXY header", "remote", nc.RemoteAddr().String(), "err", err)
		nc.Close()
		return
	}
	select {
	case l.ready <- accepted{c: c}:
	case <-l.done:
		c.Close()
	}
}

// closeOnDone closes nc if done is closed before the returned stop
// is called; stop reports whether it was called first.
func closeOnDone(done <-chan struct{}, nc net.Conn) (stop func() bool) {
	finished := make(chan struct{})
	var cut atomic.Bool
	go func() {
		select {
		case <-done:
			cut.Store(true)
			nc.Close()
		case <-finished:
		}
	}()
	var once sync.Once
	return func() bool {
		once.Do(func() { close(finished) })
		return !cut.Load()
	}
}

// readHeader reads a PROXY header from nc within timeout and returns the
// connection as the session is to see it.
func readHeader(nc net.Conn, timeout time.Duration) (*Conn, error) {
	if err := nc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(nc, readBuffer)
	c, err := parse(nc, br)
	if err != nil {
		return nil, err
	}
	if err := nc.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return c, nil
}

// parse reads the header from br, buffered over nc.
func parse(nc net.Conn, br *bufio.Reader) (*Conn, error) {
	if _, err := br.Peek(1); errors.Is(err, io.EOF) {
		return nil, errEmpty
	}
	h, err := proxyproto.Read(br)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("no PROXY header within the timeout: %w", err)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("connection closed before a complete PROXY header: %w", err)
		}
		return nil, err
	}
	c := &Conn{Conn: nc, remote: nc.RemoteAddr()}
	if h.Command.IsProxy() {
		switch a := h.SourceAddr.(type) {
		case *net.TCPAddr:
			if ap := a.AddrPort(); ap.Addr().IsValid() {
				c.remote = net.TCPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
				c.proxied = true
			}
		}
	}
	if n := br.Buffered(); n > 0 {
		rest, _ := br.Peek(n)
		c.rest = append([]byte(nil), rest...)
		c.pending.Store(true)
	}
	return c, nil
}

// addrOf is a net.Addr's IP address, unmapped; the zero Addr when it has
// none.
func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case nil:
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Conn is an accepted connection whose RemoteAddr is the client's, from
// the PROXY header.
type Conn struct {
	net.Conn
	remote  net.Addr
	proxied bool

	// rest is what arrived after the header in the same read; Read
	// returns it first.
	pending atomic.Bool
	mu      sync.Mutex
	rest    []byte
}

// RemoteAddr is the client's address as the load balancer saw it, or the
// connection's own for a LOCAL or UNKNOWN header.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// Proxied reports whether RemoteAddr came from the header.
func (c *Conn) Proxied() bool { return c.proxied }

// Source is the load balancer's address: the connection's own remote end.
func (c *Conn) Source() net.Addr { return c.Conn.RemoteAddr() }

// NetConn is the connection under the header, as tls.Conn's NetConn is,
// for what needs the socket itself (IMAP's TCP_QUICKACK after a literal's
// continuation).
func (c *Conn) NetConn() net.Conn { return c.Conn }

func (c *Conn) Read(b []byte) (int, error) {
	if c.pending.Load() {
		c.mu.Lock()
		if len(c.rest) > 0 {
			n := copy(b, c.rest)
			c.rest = c.rest[n:]
			if len(c.rest) == 0 {
				c.rest = nil
				c.pending.Store(false)
			}
			c.mu.Unlock()
			return n, nil
		}
		c.mu.Unlock()
	}
	return c.Conn.Read(b)
}

// CloseWrite shuts down the sending side, as *net.TCPConn's does.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
