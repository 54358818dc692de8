package pop3d

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/auth/limit"
)

// Default limits and timeouts.
const (
	// DefaultIdleTimeout is the autologout timer in TRANSACTION. RFC 1939
	// §3: "Such a timer MUST be of at least 10 minutes' duration."
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultLoginTimeout bounds each read in AUTHORIZATION, and
	// DefaultLoginTotal the whole state, so that unauthenticated clients
	// cannot hold connection slots. Real clients log in at once. It is
	// imapd's pre-login timeout too (cmd sets both from [limits]
	// login_timeout): a slot is no cheaper to hold on one than the other.
	DefaultLoginTimeout = 30 * time.Second
	DefaultLoginTotal   = 3 * time.Minute
	// DefaultWriteTimeout bounds each write; a client that reads nothing for
	// this long (a stalled RETR) is cut off.
	DefaultWriteTimeout = 2 * time.Minute
	// DefaultMaxErrors is how many bad commands a client may send before we
	// close the connection.
	DefaultMaxErrors = 10
	// DefaultMaxAuthFailures is how many failed logins one connection may
	// make before we close it (RFC 1939 §13 suggests closing after a few).
	DefaultMaxAuthFailures = 3
	// handshakeTimeout bounds a TLS handshake (implicit TLS or STLS).
	handshakeTimeout = 30 * time.Second
	// cleanupTimeout bounds store work at the end of a session.
	cleanupTimeout = 30 * time.Second
	// goodbyeTimeout bounds the last line we write to a client we are
	// dropping.
	goodbyeTimeout = 5 * time.Second
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("pop3d: server closed")

// Authenticator checks credentials. *auth.DB implements it.
type Authenticator interface {
	// Authenticate returns auth.ErrBadCredentials or auth.ErrThrottled
	// for a refused login.
	Authenticate(ctx context.Context, username, password string, remote netip.Addr) (auth.User, error)
	// Mechanisms lists the SASL mechanisms NewSASLServer accepts.
	Mechanisms() []string
	// NewSASLServer starts a SASL exchange; done is called once, on success.
	NewSASLServer(ctx context.Context, mech string, remote netip.Addr, done func(auth.User)) (sasl.Server, error)
}

// Options configure a Server. Store and Auth are required; zero limits get
// the defaults above.
type Options struct {
	Logger *slog.Logger
	// Hostname appears in the greeting. Default: os.Hostname().
	Hostname string
	// TLS enables STLS, or is used for every connection with ImplicitTLS.
	TLS *tls.Config
	// ImplicitTLS: every connection starts with a TLS handshake (port 995).
	ImplicitTLS bool
	// LoopbackIsSecure allows USER/PASS and AUTH on loopback connections
	// without TLS.
	LoopbackIsSecure bool
	Store            Store
	Auth             Authenticator
	// Conns, if non-nil, limits connections in total and per client
	// address: each listener is wrapped with limit.Listener, and a
	// connection over the limit gets "-ERR [SYS/TEMP] too many
	// connections" (RFC 2449 §8.1.2) before it reaches a session. Share one
	// *limit.Conns across servers to make the limits global.
	Conns *limit.Conns

	// MaxLineLength is the longest command line accepted, CRLF included.
	// Default and minimum 255 (RFC 2449 §4). No client we test needs more;
	// it is here for one that would.
	MaxLineLength int

	IdleTimeout     time.Duration
	LoginTimeout    time.Duration
	LoginTotal      time.Duration
	WriteTimeout    time.Duration
	MaxErrors       int
	MaxAuthFailures int
}

// Server is a POP3 server. One Server serves one kind of listener (plain
// with STLS, or implicit TLS); cmd runs one per listener.
type Server struct {
	opts Options
	log  *slog.Logger

	// base is the parent of every session's context. It is not cancelled
	// by Serve's context, so a QUIT in progress at shutdown can finish; it
	// is cancelled when Shutdown gives up waiting.
	base       context.Context
	cancelBase context.CancelFunc

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	wg        sync.WaitGroup
}

// New checks opts and returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("pop3d: Options.Store is required")
	}
	if opts.Auth == nil {
		return nil, errors.New("pop3d: Options.Auth is required")
	}
	if opts.ImplicitTLS && opts.TLS == nil {
		return nil, errors.New("pop3d: ImplicitTLS needs Options.TLS")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		opts.Hostname = h
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.IdleTimeout, DefaultIdleTimeout)
	def(&opts.LoginTimeout, DefaultLoginTimeout)
	def(&opts.LoginTotal, DefaultLoginTotal)
	def(&opts.WriteTimeout, DefaultWriteTimeout)
	opts.MaxLineLength = max(opts.MaxLineLength, maxCommandLine)
	if opts.MaxErrors <= 0 {
		opts.MaxErrors = DefaultMaxErrors
	}
	if opts.MaxAuthFailures <= 0 {
		opts.MaxAuthFailures = DefaultMaxAuthFailures
	}
	base, cancel := context.WithCancel(context.Background())
	return &Server{
		opts:       opts,
		log:        opts.Logger.With("proto", "pop3"),
		base:       base,
		cancelBase: cancel,
		listeners:  make(map[net.Listener]struct{}),
		sessions:   make(map[*session]struct{}),
	}, nil
}

// Serve accepts connections on ln until Shutdown (it then returns
// ErrServerClosed) or until ctx is done (ctx.Err()). Either way the
// listener is closed; sessions already running are left to Shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.opts.Conns != nil {
		ln = limit.Listener(ln, s.opts.Conns, s.refuse)
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer func() {
		stop()
		ln.Close()
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Transient (out of file descriptors): wait and retry.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "dur", backoff)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
				}
				continue
			}
			return fmt.Errorf("pop3d: accept: %w", err)
		}
		backoff = 0
		s.startSession(c)
	}
}

// startSession registers a session for c and runs it in its own goroutine,
// unless the server is shutting down.
func (s *Server) startSession(c net.Conn) {
	sess := newSession(s, c)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
		}()
		defer func() {
			if v := recover(); v != nil {
				sess.log.Error("panic in session", "err", fmt.Sprint(v), "stack", string(debug.Stack()))
				sess.abort()
			}
		}()
		sess.run()
	}()
}

// refuse answers a connection over the limit (RFC 2449 §8.1.2: SYS/TEMP).
// limit.Listener runs it in its own goroutine under a short deadline and
// closes the connection afterwards. On an implicit-TLS port the line goes
// through a TLS handshake, so the client can show it.
func (s *Server) refuse(c net.Conn) {
	const line = "-ERR [SYS/TEMP] too many connections\r\n"
	if s.opts.ImplicitTLS {
		tc := tls.Server(c, s.opts.TLS)
		if err := tc.Handshake(); err != nil {
			return
		}
		io.WriteString(tc, line)
		return
	}
	io.WriteString(c, line)
}

// Shutdown stops the server in two phases. First it closes the listeners
// and tells every session to stop: an idle session says goodbye and closes
// at once, a busy one after its current command. No session applies its
// deletions unless its QUIT was already under way. When ctx is done before
// every session has ended, Shutdown cuts the remaining connections, waits
// for their goroutines and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.stop()
	}

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancelBase()
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	sessions = sessions[:0]
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.abort()
	}
	s.cancelBase()
	<-done
	return ctx.Err()
}

// newConnID returns a short random connection id for logs.
func newConnID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
