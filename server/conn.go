package server

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/posthouse/posthouse/auth/limit"
)

// Conn is one accepted connection, as Options.Handle gets it: the socket
// with its id, client address and limit slot. Closing it releases the
// slot. Once Shutdown's grace period is over its deadline is in the past
// and stays there: SetDeadline and friends are then ignored, so a session
// renewing its deadline per command cannot undo the cut.
type Conn struct {
	nc     net.Conn
	l      *Lifecycle
	id     string
	remote netip.Addr
	slot   *limit.Slot
	ctx    context.Context
	cancel context.CancelFunc
	closed chan struct{}

	closeOnce sync.Once

	mu       sync.Mutex
	onStop   func()
	stopAsks bool // Shutdown asked this connection to finish
	cut      bool // phase 2: deadline in the past for good
}

func newConn(l *Lifecycle, nc net.Conn, id string, remote netip.Addr, slot *limit.Slot) *Conn {
	c := &Conn{nc: nc, l: l, id: id, remote: remote, slot: slot, closed: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(l.base)
	return c
}

// ID is the connection's process-wide unique id, the "conn" of its log
// lines (see the package doc).
func (c *Conn) ID() string { return c.id }

// Remote is the client's IP address (IPv4-mapped addresses unmapped); the
// zero Addr when the remote is not an IP endpoint.
func (c *Conn) Remote() netip.Addr { return c.remote }

// Slot is the connection's place in Options.Conns, through which a
// protocol reports activity and may make the connection evictable; nil
// without limits.
func (c *Conn) Slot() *limit.Slot { return c.slot }

// Context is cancelled when the grace period of Shutdown ends and when the
// connection's goroutine returns.
func (c *Conn) Context() context.Context { return c.ctx }

// Done is closed when the connection is closed. A Handle that gave the
// connection to a protocol library waits on it.
func (c *Conn) Done() <-chan struct{} { return c.closed }

// OnStop sets the function Shutdown calls to ask the session to finish at
// its next safe point (SMTP: 421 at the next command; IMAP: BYE; POP3:
// goodbye without applying deletions). It runs once, in its own goroutine;
// at once if Shutdown has already started.
func (c *Conn) OnStop(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onStop = f
	if c.stopAsks {
		c.startStop()
	}
}

// requestStop is phase 1 for this connection; called with l.mu held.
func (c *Conn) requestStop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopAsks = true
	c.startStop()
}

// startStop runs onStop once; c.mu held. The connection is live, so the
// Lifecycle's WaitGroup is above zero and may grow.
func (c *Conn) startStop() {
	f := c.onStop
	if f == nil {
		return
	}
	c.onStop = nil
	c.l.wg.Add(1)
	go func() {
		defer c.l.wg.Done()
		f()
	}()
}

// cutNow is phase 2 for this connection.
func (c *Conn) cutNow() {
	c.mu.Lock()
	c.cut = true
	c.nc.SetDeadline(time.Now())
	c.mu.Unlock()
	c.cancel()
}

// Close closes the socket and releases the slot; safe to call more than
// once.
func (c *Conn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		err = c.nc.Close()
		descriptors.release()
		if c.slot != nil {
			c.slot.Release()
		}
		close(c.closed)
	})
	return err
}

func (c *Conn) Read(b []byte) (int, error)  { return c.nc.Read(b) }
func (c *Conn) Write(b []byte) (int, error) { return c.nc.Write(b) }
func (c *Conn) LocalAddr() net.Addr         { return c.nc.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr        { return c.nc.RemoteAddr() }

func (c *Conn) SetDeadline(t time.Time) error      { return c.setDeadline(c.nc.SetDeadline, t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.setDeadline(c.nc.SetReadDeadline, t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.setDeadline(c.nc.SetWriteDeadline, t) }

// setDeadline calls set unless the connection was cut: then its deadline
// stays in the past.
func (c *Conn) setDeadline(set func(time.Time) error, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return nil
	}
	return set(t)
}

// NetConn returns the accepted connection (as crypto/tls.Conn.NetConn
// does), for code that needs the *net.TCPConn.
func (c *Conn) NetConn() net.Conn { return c.nc }

// RemoteAddr returns the IP address of a connection's remote end
// (IPv4-mapped addresses unmapped), or the zero Addr when it is not an IP
// endpoint.
func RemoteAddr(conn net.Conn) netip.Addr {
	switch a := conn.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	if a := conn.RemoteAddr(); a != nil {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr().Unmap()
		}
	}
	return netip.Addr{}
}
