package milter

import (
	"net"
	"sync"
	"time"
)

// boundedConn keeps every deadline go-milter sets within one limit (the
// end of the whole conversation) and can be expired at once (the caller's
// context ended). go-milter sets a deadline per packet and clears it
// afterwards; without this a milter that answers every packet just in
// time, or sends endless progress packets, could hold a session forever.
type boundedConn struct {
	net.Conn
	limit time.Time

	mu      sync.Mutex
	expired bool
}

func (c *boundedConn) clamp(t time.Time) time.Time {
	if c.expired {
		return time.Unix(1, 0)
	}
	if t.IsZero() || t.After(c.limit) {
		return c.limit
	}
	return t
}

func (c *boundedConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetDeadline(c.clamp(t))
}

func (c *boundedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetReadDeadline(c.clamp(t))
}

func (c *boundedConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetWriteDeadline(c.clamp(t))
}

// expire makes every pending and later read or write fail at once.
func (c *boundedConn) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expired = true
	c.Conn.SetDeadline(time.Unix(1, 0))
}

// oneConn is a go-milter Dialer that hands out a connection dialed
// already (with the caller's context, which go-milter's Dialer lacks).
type oneConn struct{ c net.Conn }

func (d oneConn) Dial(string, string) (net.Conn, error) { return d.c, nil }
