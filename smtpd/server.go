package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/server"
)

// Mode says which service a listener provides.
type Mode int

const (
	// ModeMTA is inbound mail from the internet on port 25: no AUTH, local
	// recipients only.
	ModeMTA Mode = iota
	// ModeSubmission is message submission on port 587 (RFC 6409): STARTTLS,
	// then AUTH, then MAIL.
	ModeSubmission
	// ModeSubmissions is message submission over implicit TLS on port 465
	// (RFC 8314 §3.3); AUTH as on ModeSubmission.
	ModeSubmissions
)

func (m Mode) String() string {
	switch m {
	case ModeMTA:
		return "smtp"
	case ModeSubmission:
		return "submission"
	case ModeSubmissions:
		return "submissions"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// submission reports whether the mode is one of the MSA modes.
func (m Mode) submission() bool { return m == ModeSubmission || m == ModeSubmissions }

// Defaults for zero Options fields. Timeouts follow RFC 5321 §4.5.3.2.
const (
	DefaultMaxMessageBytes = 50 << 20
	DefaultMaxRecipients   = 100 // RFC 5321 §4.5.3.1.8 asks for at least 100
	DefaultMaxLineLength   = 1000
	DefaultCommandTimeout  = 5 * time.Minute  // §4.5.3.2.7, server waiting for the next command
	DefaultDataTimeout     = 10 * time.Minute // whole DATA upload, from the 354
	DefaultWriteTimeout    = time.Minute
	// DefaultMaxJunkCommands is how many commands that do not advance a
	// mail transaction (NOOP, RSET, VRFY, HELP, EHLO, unknown ones…) a
	// connection may send between messages; then 421 4.7.0.
	DefaultMaxJunkCommands = 100
	// DefaultMaxSessionDuration is how long one connection may last. It
	// leaves room for several 50 MiB messages on a slow link (each upload
	// is bounded by DataTimeout); a message in progress is never cut.
	DefaultMaxSessionDuration = 30 * time.Minute
	// DefaultDeliveryTimeout bounds the store and queue calls after the
	// final dot, so a stuck disk cannot hold a connection forever.
	DefaultDeliveryTimeout = 2 * time.Minute
	// maxAuthFailures per connection; then the connection is closed.
	maxAuthFailures = 3
	// maxBadRecipients refused RCPTs (unknown user, relay) per connection;
	// then the connection is closed, which slows address harvesting.
	maxBadRecipients = 20
	// refuseWriteTimeout bounds the 421 written to over-limit connections.
	refuseWriteTimeout = 2 * time.Second
)

// Directory is what smtpd needs from auth: address resolution, domain
// membership, sender ownership and SASL. *auth.DB implements it.
type Directory interface {
	// Resolve returns where mail for address goes; auth.ErrNotLocal for a
	// foreign domain, auth.ErrNoSuchUser for an unknown local address.
	Resolve(ctx context.Context, address string) (auth.Resolution, error)
	IsLocalDomain(ctx context.Context, domain string) (bool, error)
	// CanSendAs reports whether user may use from as envelope sender.
	CanSendAs(ctx context.Context, user, from string) (bool, error)
	auth.SASL
}

// Queue takes mail for foreign recipients (and local copies that failed
// after others were accepted, see the package doc). *queue.Queue
// implements it; Enqueue is durable before it returns.
type Queue interface {
	Enqueue(ctx context.Context, from string, rcpts []string, body io.Reader) (id string, err error)
	// Bounce sends from a failure report at once for the local accounts
	// a filter refused (5xx) after the message was accepted for others
	// (message id, body for its header); durable when it returns.
	Bounce(ctx context.Context, from, id string, body io.Reader, refused []delivery.Result) error
}

// Space reports whether free disk space is below the reserve. It is asked
// at every MAIL and RCPT, so it must be cheap (*diskspace.Monitor caches
// its statfs).
type Space interface {
	Low() bool
}

// Options configure one listener's server. Zero limits take the Default*
// values.
type Options struct {
	Logger   *slog.Logger
	Hostname string // our name in the greeting and Received headers
	Mode     Mode
	// TLS is required for ModeSubmission and ModeSubmissions and offered
	// through STARTTLS on ModeMTA when set. It is cloned; session tickets
	// are turned off in the clone.
	TLS *tls.Config

	Directory Directory
	// Store serves the quota check at RCPT (store.go).
	Store Store
	// Delivery makes the local copies (see the Delivery interface).
	Delivery Delivery
	// Queue may be nil: foreign recipients are then refused with 451 4.3.0
	// (a configuration error, logged).
	Queue Queue

	// Gate, when set, admits or refuses MAIL and RCPT on ModeMTA (gate.go;
	// package gate: DNS block lists, greylisting, sender rate).
	Gate Gate

	// SRS, when set, recognises the SRS addresses of forwarded mail at
	// RCPT: bounces to valid ones go back to the original sender
	// (sendas.go).
	SRS SRS

	// Space, when set, says when data_dir's free space is below the
	// reserve: MAIL and RCPT then get 452 4.3.1 (*diskspace.Monitor).
	Space Space

	// SpoolDir holds message bodies while they are received. Each spool
	// file is unlinked as soon as it is created, so nothing is left behind
	// by a crash. Default: os.TempDir().
	SpoolDir string

	MaxMessageBytes int64
	MaxRecipients   int
	MaxLineLength   int // octets per line with CRLF, commands and body

	CommandTimeout  time.Duration
	DataTimeout     time.Duration
	WriteTimeout    time.Duration
	DeliveryTimeout time.Duration

	// Conns, if not nil, limits connections in total, per client address
	// and in rate (package server); a connection over a limit gets 421
	// 4.7.0 at connect. cmd shares one between 25, 587 and 465. When all
	// slots are taken a newcomer may get the slot of an idle connection
	// from the address holding the most (auth/limit); that connection is
	// told 421 4.7.0 at its next command.
	Conns *limit.Conns

	// MaxJunkCommands bounds commands that do not advance a transaction,
	// counted from the last accepted message; MaxSessionDuration bounds a
	// connection's life, checked between commands (Now is its clock).
	MaxJunkCommands    int
	MaxSessionDuration time.Duration

	// Now is the clock for Received and Date headers; default time.Now.
	Now func() time.Time

	// Observe, when set, hears of every message accepted and every MAIL,
	// RCPT or DATA refused (outcome.go; cmd feeds package metrics). It is
	// called on the session's goroutine and must not block.
	Observe func(Outcome)
}

// Server is one SMTP listener's server: one go-smtp Server, one mode, one
// TLS configuration and one set of limits.
type Server struct {
	opts Options
	log  *slog.Logger
	tls  *tls.Config
	smtp *smtp.Server

	// life accepts, limits, registers and shuts down the connections;
	// go-smtp's own loop reads from handoff.
	life      *server.Lifecycle
	handoff   *server.Handoff
	libWG     sync.WaitGroup
	startOnce sync.Once

	// inflight counts Data calls, which must finish before Shutdown
	// returns: the store is closed after us. closed (under mu) stops new
	// ones.
	mu        sync.Mutex
	closed    bool
	inflight  sync.WaitGroup
	inflightN atomic.Int64
	// dataHook, when set (by tests), runs first in Data: between the go
	// ahead to the client (354, or the BDAT command read) and Data's own
	// bookkeeping.
	dataHook atomic.Pointer[func(*conn)]
	// baseCtx parents every session context: the lifecycle's, cancelled
	// when Shutdown's grace period ends, so stuck store calls give up.
	baseCtx context.Context
}

// New checks opts and builds a Server.
func New(opts Options) (*Server, error) {
	if opts.Directory == nil || opts.Store == nil || opts.Delivery == nil {
		return nil, errors.New("smtpd: Options.Directory, Options.Store and Options.Delivery are required")
	}
	if opts.Mode.submission() && opts.TLS == nil {
		return nil, fmt.Errorf("smtpd: %s needs Options.TLS", opts.Mode)
	}
	if opts.Mode < ModeMTA || opts.Mode > ModeSubmissions {
		return nil, fmt.Errorf("smtpd: unknown mode %d", int(opts.Mode))
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Hostname = server.Hostname(opts.Hostname)
	if opts.SpoolDir == "" {
		opts.SpoolDir = os.TempDir()
	}
	setDefault(&opts.MaxMessageBytes, DefaultMaxMessageBytes)
	setDefault(&opts.MaxRecipients, DefaultMaxRecipients)
	setDefault(&opts.MaxLineLength, DefaultMaxLineLength)
	setDefault(&opts.CommandTimeout, DefaultCommandTimeout)
	setDefault(&opts.DataTimeout, DefaultDataTimeout)
	setDefault(&opts.WriteTimeout, DefaultWriteTimeout)
	setDefault(&opts.DeliveryTimeout, DefaultDeliveryTimeout)
	setDefault(&opts.MaxJunkCommands, DefaultMaxJunkCommands)
	setDefault(&opts.MaxSessionDuration, DefaultMaxSessionDuration)
	if opts.Now == nil {
		opts.Now = time.Now
	}

	s := &Server{
		opts:    opts,
		log:     opts.Logger.With("proto", "smtp", "mode", opts.Mode.String()),
		handoff: server.NewHandoff(),
	}
	life, err := server.New(server.Options{Logger: s.log, Conns: opts.Conns, Refuse: s.refuse, Handle: s.handle})
	if err != nil {
		return nil, err
	}
	s.life, s.baseCtx = life, life.Context()
	if opts.TLS != nil {
		s.tls = opts.TLS.Clone()
		// Senders on Microsoft's platform abort STARTTLS against Go's
		// crypto/tls when it issues session tickets.
		s.tls.SessionTicketsDisabled = true
	}
	srv := smtp.NewServer(&backend{s: s})
	srv.Domain = opts.Hostname
	srv.MaxMessageBytes = opts.MaxMessageBytes
	srv.MaxRecipients = opts.MaxRecipients
	// One more on the wire: a message line's transparency dot is not
	// counted (RFC 5321 §4.5.3.1.6), and go-smtp counts wire lines.
	srv.MaxLineLength = opts.MaxLineLength + 1
	srv.ReadTimeout = opts.CommandTimeout
	srv.WriteTimeout = opts.WriteTimeout
	srv.EnableSMTPUTF8 = true
	// We decide ourselves where AUTH is offered (submission, after TLS)
	// so that the refusals carry RFC 4954's codes.
	srv.AllowInsecureAuth = true
	srv.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelError)
	// srv.TLSConfig stays nil: our edge (conn.go) runs TLS, implicit and
	// STARTTLS, so that it sees the plain text.
	s.smtp = srv
	return s, nil
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = server.ErrServerClosed

// Serve accepts connections on ln until Shutdown (then it returns
// ErrServerClosed) or until ctx is done (ctx.Err()). It may be called for
// several listeners of the same mode.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.startOnce.Do(func() {
		s.libWG.Add(1)
		go func() {
			defer s.libWG.Done()
			s.smtp.Serve(s.handoff)
		}()
	})
	s.log.Debug("serving", "addr", ln.Addr().String())
	return s.life.Serve(ctx, ln)
}

// handle gives an accepted connection our edge (conn.go) and go-smtp, and
// waits until it is closed. Shutdown's first phase wakes it (conn.wake):
// 421 at the next command boundary, never inside a message.
func (s *Server) handle(lc *server.Conn) {
	c := newConn(s, lc)
	c.log.Info("connect")
	s.gateConnect(lc.Context(), c)
	lc.OnStop(c.wake)
	if !s.handoff.Give(c) {
		c.Close()
		return
	}
	<-lc.Done()
}

// refuse answers a connection over the limits. On implicit TLS a plain-text
// reply would only confuse the client's handshake, so it is just closed.
func (s *Server) refuse(c net.Conn, why error) {
	if s.opts.Mode == ModeSubmissions {
		return
	}
	msg := "Too many connections, try again later"
	if why == limit.ErrRate {
		msg = "Too many connections from your address, slow down"
	}
	c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
	io.WriteString(c, "421 4.7.0 "+s.opts.Hostname+" "+msg+"\r\n")
}

// Shutdown stops the server in two phases (STYLE §6, package server).
// First it closes the listeners and ends every idle connection with a 421
// while messages being received or delivered are allowed to finish; when
// ctx is done, it cuts the remaining connections and waits for their
// goroutines.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.life.Shutdown(ctx)
	// Every connection is closed: go-smtp's loop ends with its listener,
	// its Shutdown waits for its connection goroutines, and Data calls
	// (a BDAT body reader may outlive its connection) end under the
	// cancelled base context.
	s.smtp.Shutdown(context.Background())
	// go-smtp closes only the listeners its Serve has registered; one
	// started just before Shutdown may not have yet. Closing the handoff
	// ends its Accept either way (as imapd closes its own).
	s.handoff.Close()
	// As in imapd: a Serve that has not started go-smtp's loop by now never
	// will, so its libWG.Add cannot race with the Wait.
	s.startOnce.Do(func() {})
	s.libWG.Wait()
	s.inflight.Wait()
	return err
}

// inflightCount is the number of messages being received or delivered.
func (s *Server) inflightCount() int64 { return s.inflightN.Load() }

// ourConn finds our edge beneath go-smtp's connection.
func ourConn(nc net.Conn) *conn {
	c, _ := nc.(*conn)
	return c
}

// tlsSummary renders a connection state for logs and Received headers.
func tlsSummary(cs *tls.ConnectionState) (version, cipher string) {
	if cs == nil {
		return "", ""
	}
	return strings.ReplaceAll(tls.VersionName(cs.Version), " ", ""), tls.CipherSuiteName(cs.CipherSuite)
}
