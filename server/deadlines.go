package server

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Errors of Deadlines: the connection was cut (its context ended), or
// Shutdown's first phase asked the session to finish.
var (
	ErrAborted  = errors.New("connection aborted")
	ErrStopping = errors.New("server shutting down")
)

// Deadlines arms the connection of a session our own code reads line by
// line (pop3d, managesieve): a read deadline before each line or literal,
// so a client that is sending keeps its connection and one that stalls is
// cut; a write deadline before each write, so a slow but moving client can
// take a large answer; and Stop, Shutdown's first phase, which wakes a
// session waiting for a command (a busy one finishes its command first).
// Stop may be called from any goroutine; the rest from the session's.
type Deadlines struct {
	ctx  context.Context
	conn net.Conn // as accepted, under any TLS

	mu       sync.Mutex
	stopping bool
}

// NewDeadlines arms conn; ctx is the session's, which the lifecycle
// cancels when it cuts the connection.
func NewDeadlines(ctx context.Context, conn net.Conn) *Deadlines {
	return &Deadlines{ctx: ctx, conn: conn}
}

// ArmRead sets the read deadline d from now, or refuses once the
// connection is cut (ErrAborted) or the server is stopping (ErrStopping).
func (d *Deadlines) ArmRead(timeout time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() != nil {
		return ErrAborted
	}
	if d.stopping {
		return ErrStopping
	}
	return d.conn.SetReadDeadline(time.Now().Add(timeout))
}

// ArmWrite sets the write deadline d from now, or refuses once the
// connection is cut.
func (d *Deadlines) ArmWrite(timeout time.Duration) error {
	if d.ctx.Err() != nil {
		return ErrAborted
	}
	return d.conn.SetWriteDeadline(time.Now().Add(timeout))
}

// Stopping reports whether Stop was called.
func (d *Deadlines) Stopping() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopping
}

// Stop makes the next ArmRead refuse and wakes a read in progress.
func (d *Deadlines) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopping = true
	d.conn.SetReadDeadline(time.Now())
}
