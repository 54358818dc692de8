package pop3d

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/server"
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
var ErrServerClosed = server.ErrServerClosed

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
	Auth             auth.Authenticator
	// Conns, if non-nil, limits connections in total, per client address
	// and in rate (package server): a connection over a limit gets "-ERR
	// [SYS/TEMP] too many connections" (RFC 2449 §8.1.2) before it reaches
	// a session. Share one *limit.Conns across servers to make the limits
	// global. POP3 connections are never evicted.
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
	// life accepts, limits, registers and shuts down the connections.
	life *server.Lifecycle
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
	opts.Hostname = server.Hostname(opts.Hostname)
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
	s := &Server{opts: opts, log: opts.Logger.With("proto", "pop3")}
	life, err := server.New(server.Options{Logger: s.log, Conns: opts.Conns, Refuse: s.refuse, Handle: s.handle})
	if err != nil {
		return nil, err
	}
	s.life = life
	return s, nil
}

// Serve accepts connections on ln until Shutdown (it then returns
// ErrServerClosed) or until ctx is done (ctx.Err()). Either way the
// listener is closed; sessions already running are left to Shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.life.Serve(ctx, ln)
}

// handle runs one session; Shutdown's first phase stops it at its next
// command (session.stop).
func (s *Server) handle(c *server.Conn) {
	sess := newSession(c.Context(), s, c, c.ID(), c.Remote())
	c.OnStop(sess.dl.Stop)
	sess.run()
}

// refuse answers a connection over the limit (RFC 2449 §8.1.2: SYS/TEMP).
// The lifecycle runs it in its own goroutine under a short deadline and
// closes the connection afterwards. On an implicit-TLS port the line goes
// through a TLS handshake, so the client can show it.
func (s *Server) refuse(c net.Conn, _ error) {
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

// Shutdown stops the server in two phases (package server). First it
// closes the listeners and tells every session to stop: an idle session
// says goodbye and closes at once, a busy one after its current command. No
// session applies its deletions unless its QUIT was already under way. When
// ctx is done before every session has ended, Shutdown cuts the remaining
// connections, waits for their goroutines and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	return s.life.Shutdown(ctx)
}
