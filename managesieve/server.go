package managesieve

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/server"
	"github.com/posthouse/posthouse/sieve"
)

// Default limits and timeouts.
const (
	// DefaultIdleTimeout is how long an authenticated client may stay
	// silent. RFC 5804 sets none; a user may keep the Sieve editor of a
	// mail client open for a while, so it is IMAP's autologout (RFC 9051
	// §5.4: at least 30 minutes).
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultLoginTimeout bounds each read before authentication and
	// DefaultLoginTotal the whole unauthenticated state, as for IMAP and
	// POP3 (cmd sets the first from [limits] login_timeout).
	DefaultLoginTimeout = 30 * time.Second
	DefaultLoginTotal   = 3 * time.Minute
	// DefaultWriteTimeout bounds each write.
	DefaultWriteTimeout = 2 * time.Minute
	// DefaultMaxErrors is how many bad commands a client may send before
	// we close the connection.
	DefaultMaxErrors = 10
	// DefaultMaxAuthFailures is how many failed AUTHENTICATEs one
	// connection may make before we close it.
	DefaultMaxAuthFailures = 3
	// handshakeTimeout bounds a STARTTLS handshake.
	handshakeTimeout = 30 * time.Second
	// goodbyeTimeout bounds the last line written to a refused client.
	goodbyeTimeout = 5 * time.Second
	// preAuthDiscard is how much refused input (overlong lines, literals
	// too large) we read and throw away per command before
	// authentication; afterwards it is four scripts' worth, at least 1
	// MiB, so that a script a little over the limit gets NO
	// (QUOTA/MAXSIZE) and the session goes on.
	preAuthDiscard = 64 << 10
	minDiscard     = 1 << 20
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = server.ErrServerClosed

// Options configure a Server. Store and Auth are required; zero limits get
// the defaults above.
type Options struct {
	Logger *slog.Logger
	// Hostname appears in the greeting. Default: os.Hostname().
	Hostname string
	// TLS enables STARTTLS (RFC 5804 §2.2). ManageSieve has no implicit
	// TLS port.
	TLS *tls.Config
	// LoopbackIsSecure allows AUTHENTICATE on loopback connections
	// without TLS (a webmail's managesieve plugin on the same host).
	LoopbackIsSecure bool
	Store            Store
	Auth             auth.SASL
	// Sieve are the options scripts are compiled with: SIEVE lists
	// sieve.Extensions without Sieve.Disabled, MAXREDIRECTS is
	// Sieve.MaxRedirects.
	Sieve sieve.Options
	// Conns, if non-nil, limits connections in total, per client address
	// and in rate (package server): a connection over a limit gets BYE
	// (TRYLATER). ManageSieve connections are never evicted.
	Conns *limit.Conns

	IdleTimeout     time.Duration
	LoginTimeout    time.Duration
	LoginTotal      time.Duration
	WriteTimeout    time.Duration
	MaxErrors       int
	MaxAuthFailures int
}

// Server is a ManageSieve server for one listener.
type Server struct {
	opts Options
	log  *slog.Logger
	// sieveCap and maxRedirects are the SIEVE and MAXREDIRECTS
	// capabilities.
	sieveCap     string
	maxRedirects int
	// life accepts, limits, registers and shuts down the connections.
	life *server.Lifecycle
}

// New checks opts and returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("managesieve: Options.Store is required")
	}
	if opts.Auth == nil {
		return nil, errors.New("managesieve: Options.Auth is required")
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
	if opts.MaxErrors <= 0 {
		opts.MaxErrors = DefaultMaxErrors
	}
	if opts.MaxAuthFailures <= 0 {
		opts.MaxAuthFailures = DefaultMaxAuthFailures
	}
	s := &Server{opts: opts, log: opts.Logger.With("proto", "managesieve")}
	var exts []string
	for _, e := range sieve.Extensions {
		if !slices.Contains(opts.Sieve.Disabled, e) {
			exts = append(exts, e)
		}
	}
	s.sieveCap = strings.Join(exts, " ")
	s.maxRedirects = opts.Sieve.MaxRedirects
	if s.maxRedirects <= 0 {
		s.maxRedirects = sieve.DefaultMaxRedirects
	}
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

// refuse answers a connection over the limit. The lifecycle runs it in its
// own goroutine under a short deadline and closes the connection.
func (s *Server) refuse(c net.Conn, _ error) {
	c.SetWriteDeadline(time.Now().Add(goodbyeTimeout))
	io.WriteString(c, `BYE (TRYLATER) "too many connections"`+"\r\n")
}

// Shutdown stops the server in two phases (package server). First it
// closes the listener and tells every session to stop: an idle session
// says BYE (TRYLATER) and closes at once, a busy one after its current
// command. When ctx is done before every session has ended, Shutdown cuts
// the remaining connections, waits for their goroutines and returns
// ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	return s.life.Shutdown(ctx)
}
