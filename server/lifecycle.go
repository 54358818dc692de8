package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/posthouse/posthouse/auth/limit"
)

// ErrServerClosed is what Serve returns once Shutdown has been called.
var ErrServerClosed = errors.New("server: closed")

const (
	// RefuseTimeout is the deadline set on a refused connection before it
	// is handed to Options.Refuse; Refuse may shorten it.
	RefuseTimeout = 5 * time.Second
	// maxRefusing bounds refusals in flight; beyond it connections are
	// closed without a reply, so a flood cannot pile up goroutines.
	maxRefusing = 64
	// Accept backoff on temporary errors: doubled from minAcceptDelay up
	// to maxAcceptDelay, reset by the next accepted connection.
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// Options configure a Lifecycle.
type Options struct {
	// Logger receives the lifecycle's own lines (refusals, accept errors,
	// shutdown); it should carry the protocol's "proto".
	Logger *slog.Logger
	// Conns counts connections against the limits; nil limits nothing.
	// Share one between Lifecycles to make the limits span them.
	Conns *limit.Conns
	// Refuse writes the protocol's "too busy" reply to a connection over
	// the limits; why is limit.ErrRate or limit.ErrTooManyConns. It runs in
	// its own goroutine under RefuseTimeout; the connection is closed after
	// it returns in any case. Nil closes without a word.
	Refuse func(c net.Conn, why error)
	// Handle serves one accepted connection, in a goroutine the Lifecycle
	// owns. The connection is live (registered, counted against the
	// limits) until Handle returns; it is closed then if Handle has not.
	// Required.
	Handle func(c *Conn)
}

// Lifecycle accepts connections on any number of listeners and owns them
// until they end. See the package doc.
type Lifecycle struct {
	log    *slog.Logger
	conns  *limit.Conns
	refuse func(net.Conn, error)
	handle func(*Conn)
	// sleep waits out an accept backoff; tests record the delays.
	sleep func(d time.Duration, stop <-chan struct{})

	// base parents every connection's context; cancelled when the grace
	// period ends (or Shutdown returns).
	base       context.Context
	cancelBase context.CancelFunc
	stopping   chan struct{} // closed when Shutdown starts

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	live      map[*Conn]struct{}
	refusing  map[net.Conn]struct{}
	loops     sync.WaitGroup // Serve loops
	wg        sync.WaitGroup // Handle goroutines, refusals, stop requests
}

// New returns a Lifecycle; Options.Handle is required.
func New(o Options) (*Lifecycle, error) {
	if o.Handle == nil {
		return nil, errors.New("server: Options.Handle is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Lifecycle{
		log:       o.Logger,
		conns:     o.Conns,
		refuse:    o.Refuse,
		handle:    o.Handle,
		sleep:     sleep,
		stopping:  make(chan struct{}),
		listeners: map[net.Listener]struct{}{},
		live:      map[*Conn]struct{}{},
		refusing:  map[net.Conn]struct{}{},
	}
	l.base, l.cancelBase = context.WithCancel(context.Background())
	return l, nil
}

func sleep(d time.Duration, stop <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-stop:
	}
}

// Serve accepts connections on ln until Shutdown (then it returns
// ErrServerClosed) or until ctx is done (ctx.Err()); either way ln is
// closed. Connections already accepted are left to Shutdown. Serve may run
// for several listeners at once.
func (l *Lifecycle) Serve(ctx context.Context, ln net.Listener) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	l.listeners[ln] = struct{}{}
	l.loops.Add(1)
	l.mu.Unlock()
	defer l.loops.Done()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer func() {
		stop()
		ln.Close()
		l.mu.Lock()
		delete(l.listeners, ln)
		l.mu.Unlock()
	}()

	var delay time.Duration
	for {
		if !descriptors.acquire(l.log, l.stopping, ctx.Done()) {
			if l.Stopping() {
				return ErrServerClosed
			}
			return ctx.Err()
		}
		nc, err := ln.Accept()
		if err != nil {
			descriptors.release()
			switch {
			case l.Stopping():
				return ErrServerClosed
			case ctx.Err() != nil:
				return ctx.Err()
			case temporary(err):
				// Out of file descriptors, or a connection that died
				// in the backlog: wait, keep the listener.
				delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
				l.log.Warn("accept failed, retrying", "err", err, "dur", delay)
				l.sleep(delay, l.stopping)
				continue
			}
			return fmt.Errorf("server: accept: %w", err)
		}
		delay = 0
		l.admit(nc)
	}
}

// temporary reports an accept error worth retrying.
func temporary(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() ||
		errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ECONNRESET)
}

// admit takes a slot for nc or refuses it, then registers it and starts
// its Handle goroutine.
func (l *Lifecycle) admit(nc net.Conn) {
	remote := RemoteAddr(nc)
	var slot *limit.Slot
	if l.conns != nil {
		s, err := l.conns.Take(remote)
		if err != nil {
			l.log.Warn("connection refused", "remote", nc.RemoteAddr().String(), "err", err)
			l.startRefuse(nc, err)
			return
		}
		slot = s
	}
	c := newConn(l, nc, nextID(), remote, slot)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.Close()
		return
	}
	l.live[c] = struct{}{}
	l.wg.Add(1)
	l.mu.Unlock()
	go l.run(c)
}

// run is a connection's goroutine.
func (l *Lifecycle) run(c *Conn) {
	defer l.wg.Done()
	defer func() {
		if v := recover(); v != nil {
			l.log.Error("panic in session", "conn", c.id, "remote", c.remote.String(),
				"err", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
		c.Close()
		c.cancel()
		l.mu.Lock()
		delete(l.live, c)
		l.mu.Unlock()
	}()
	l.handle(c)
}

func (l *Lifecycle) startRefuse(nc net.Conn, why error) {
	l.mu.Lock()
	if l.closed || l.refuse == nil || len(l.refusing) >= maxRefusing {
		l.mu.Unlock()
		nc.Close()
		descriptors.release()
		return
	}
	l.refusing[nc] = struct{}{}
	l.wg.Add(1)
	l.mu.Unlock()
	nc.SetDeadline(time.Now().Add(RefuseTimeout))
	go func() {
		defer l.wg.Done()
		defer func() {
			nc.Close()
			descriptors.release()
			l.mu.Lock()
			delete(l.refusing, nc)
			l.mu.Unlock()
		}()
		l.refuse(nc, why)
	}()
}

// Stopping reports whether Shutdown has started: sessions should end at
// their next safe point.
func (l *Lifecycle) Stopping() bool {
	select {
	case <-l.stopping:
		return true
	default:
		return false
	}
}

// Context is the parent of every connection's context: cancelled when
// Shutdown's grace period ends, and when Shutdown returns.
func (l *Lifecycle) Context() context.Context { return l.base }

// Len is the number of live connections.
func (l *Lifecycle) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.live)
}

// Shutdown stops in two phases. Phase 1: close the listeners, cut
// refusals in progress, and ask every connection to finish at its next
// safe point (each Conn.OnStop function runs in its own goroutine); then
// wait for the connections to end. Phase 2, once ctx is done: an immediate
// deadline on every connection that is left (further deadlines are
// ignored), their contexts cancelled, and a wait for their goroutines.
// Shutdown returns ctx.Err() if phase 2 was needed, and nil otherwise;
// later calls just wait.
func (l *Lifecycle) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.loops.Wait()
		l.wg.Wait()
		return nil
	}
	l.closed = true
	close(l.stopping)
	for ln := range l.listeners {
		ln.Close()
	}
	for nc := range l.refusing {
		nc.SetDeadline(time.Now())
	}
	for c := range l.live {
		c.requestStop()
	}
	n := len(l.live)
	l.mu.Unlock()
	l.log.Info("shutting down", "conns", n)
	l.loops.Wait()

	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		l.mu.Lock()
		l.log.Warn("grace period over, cutting connections", "conns", len(l.live))
		for c := range l.live {
			c.cutNow()
		}
		l.mu.Unlock()
		l.cancelBase()
		<-done
	}
	l.cancelBase()
	return err
}
