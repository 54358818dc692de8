package server

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/posthouse/posthouse/auth/limit"
)

// Listener wraps ln: over-limit connections are handed to refuse (which
// writes the protocol's "too busy" line, then closes; it runs in its own
// goroutine with RefuseTimeout as deadline, and the connection is closed
// after it returns in any case) and never reach Accept's caller. Accepted
// connections release their slot on Close (idempotent). Close on the
// listener closes ln, cuts refusals still running and waits for them. A nil
// refuse just closes over-limit connections; a nil c limits nothing.
// Refusal tells refuse why; SlotOf gives an accepted connection's Slot.
func Listener(ln net.Listener, c *limit.Conns, refuse func(net.Conn)) net.Listener {
	return &listener{Listener: ln, c: c, refuse: refuse, refusing: map[net.Conn]struct{}{}}
}

type listener struct {
	net.Listener
	c      *limit.Conns
	refuse func(net.Conn)

	mu       sync.Mutex
	closed   bool
	refusing map[net.Conn]struct{}
	wg       sync.WaitGroup
}

// RemoteAddr returns the IP address of a connection's remote end, or the
// zero Addr when it is not an IP endpoint.
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

func (l *listener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.c == nil {
			return conn, nil
		}
		slot, err := l.c.Take(RemoteAddr(conn))
		if err == nil {
			return &limitedConn{Conn: conn, slot: slot}, nil
		}
		l.startRefuse(&refusedConn{Conn: conn, why: err})
	}
}

func (l *listener) startRefuse(conn net.Conn) {
	l.mu.Lock()
	if l.closed || l.refuse == nil || len(l.refusing) >= maxRefusing {
		l.mu.Unlock()
		conn.Close()
		return
	}
	l.refusing[conn] = struct{}{}
	l.wg.Add(1)
	l.mu.Unlock()
	conn.SetDeadline(time.Now().Add(RefuseTimeout))
	go func() {
		defer l.wg.Done()
		defer func() {
			conn.Close()
			l.mu.Lock()
			delete(l.refusing, conn)
			l.mu.Unlock()
		}()
		l.refuse(conn)
	}()
}

// Close closes the listener, cuts refusals in progress and waits for them.
func (l *listener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	for conn := range l.refusing {
		conn.SetDeadline(time.Now())
	}
	l.mu.Unlock()
	l.wg.Wait()
	return err
}

// limitedConn releases its slot when closed.
type limitedConn struct {
	net.Conn
	slot *limit.Slot
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.slot.Release()
	return err
}

// SlotOf returns the Slot of a connection accepted by a Listener, looking
// through wrappers that have a NetConn method (as *tls.Conn does); nil if
// there is none.
func SlotOf(conn net.Conn) *limit.Slot {
	for conn != nil {
		if lc, ok := conn.(*limitedConn); ok {
			return lc.slot
		}
		u, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		conn = u.NetConn()
	}
	return nil
}

// refusedConn is what refuse gets: the connection and why it was refused.
type refusedConn struct {
	net.Conn
	why error
}

func (c *refusedConn) NetConn() net.Conn { return c.Conn }

// Refusal returns why a connection handed to a Listener's refuse function
// was refused: limit.ErrRate or limit.ErrTooManyConns (nil for any other connection).
func Refusal(conn net.Conn) error {
	if rc, ok := conn.(*refusedConn); ok {
		return rc.why
	}
	return nil
}

// NetConn returns the wrapped connection (for code that needs the
// *net.TCPConn, as crypto/tls.Conn.NetConn does).
func (c *limitedConn) NetConn() net.Conn { return c.Conn }
