package server

import (
	"net"
	"sync"
)

// Handoff is a net.Listener whose connections come from a Handle function
// rather than from a socket: the way to run a protocol library whose
// Serve insists on its own accept loop (go-smtp, imapserver) behind the
// Lifecycle's. Its Accept never fails but with net.ErrClosed, so the
// library's backoff never runs.
type Handoff struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

// NewHandoff returns an open Handoff.
func NewHandoff() *Handoff {
	return &Handoff{ch: make(chan net.Conn), done: make(chan struct{})}
}

// Give hands c to the library's Accept and reports whether it was taken;
// false once the Handoff is closed (c is then the caller's to close).
func (h *Handoff) Give(c net.Conn) bool {
	select {
	case <-h.done:
		return false
	default:
	}
	select {
	case h.ch <- c:
		return true
	case <-h.done:
		return false
	}
}

// Accept returns the next connection given, or net.ErrClosed.
func (h *Handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

// Close makes Accept and Give fail from now on.
func (h *Handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

// Addr is a placeholder: the connections have their own.
func (h *Handoff) Addr() net.Addr { return handoffAddr{} }

type handoffAddr struct{}

func (handoffAddr) Network() string { return "handoff" }
func (handoffAddr) String() string  { return "handoff" }
