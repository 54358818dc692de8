package smtpd

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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/mailstore"
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
	DefaultMaxMessageBytes     = 50 << 20
	DefaultMaxRecipients       = 100 // RFC 5321 §4.5.3.1.8 asks for at least 100
	DefaultMaxLineLength       = 1000
	DefaultCommandTimeout      = 5 * time.Minute  // §4.5.3.2.7, server waiting for the next command
	DefaultDataTimeout         = 10 * time.Minute // whole DATA upload, from the 354
	DefaultWriteTimeout        = time.Minute
	DefaultMaxConnections      = 1000
	DefaultMaxConnectionsPerIP = 50
	// DefaultMaxConnectionRate is new connections per client address per
	// minute; past it a client gets 421 4.7.0 at connect.
	DefaultMaxConnectionRate = 60
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
	Mechanisms() []string
	// NewSASLServer returns a SASL server for mech; done is called once on
	// success with the authenticated user.
	NewSASLServer(ctx context.Context, mech string, remote netip.Addr, done func(auth.User)) (sasl.Server, error)
}

// Store is what smtpd needs from the mailstore: opening the recipient's
// account to read its Usage at RCPT. mailstore.Store implements it.
type Store interface {
	Open(ctx context.Context, name string) (mailstore.Account, error)
}

// Queue takes mail for foreign recipients (and local copies that failed
// after others were accepted, see the package doc). *queue.Queue
// implements it; Enqueue is durable before it returns.
type Queue interface {
	Enqueue(ctx context.Context, from string, rcpts []string, body io.Reader) (id string, err error)
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
	Store     Store
	// Delivery makes the local copies (see the Delivery interface).
	Delivery Delivery
	// Queue may be nil: foreign recipients are then refused with 451 4.3.0
	// (a configuration error, logged).
	Queue Queue

	// Resolver, when set, lets ModeMTA verify DKIM signatures and add an
	// Authentication-Results field; tests point it at a loopback DNS
	// server.
	Resolver TXTResolver

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

	// Conns, when set, counts connections across listeners (cmd shares one
	// between 25, 587 and 465). Otherwise one is made from the three
	// limits. Either way, when all slots are taken a newcomer may get the
	// slot of an idle connection from the address holding the most (see
	// auth/limit); that connection is told 421 4.7.0.
	Conns               *limit.Conns
	MaxConnections      int
	MaxConnectionsPerIP int
	MaxConnectionRate   int // per client address per minute; < 0: no limit

	// MaxJunkCommands bounds commands that do not advance a transaction,
	// counted from the last accepted message; MaxSessionDuration bounds a
	// connection's life, checked between commands (Now is its clock).
	MaxJunkCommands    int
	MaxSessionDuration time.Duration

	// Now is the clock for Received and Date headers; default time.Now.
	Now func() time.Time
}

// Server is one SMTP listener's server: one go-smtp Server, one mode, one
// TLS configuration and one set of limits.
type Server struct {
	opts Options
	log  *slog.Logger
	tls  *tls.Config
	smtp *smtp.Server

	connPrefix string
	connSeq    atomic.Uint64

	mu        sync.Mutex
	conns     map[*conn]struct{}
	listeners []net.Listener
	draining  atomic.Bool
	closed    bool

	// inflight counts Data calls, which must finish before Shutdown
	// returns: the store is closed after us.
	inflight  sync.WaitGroup
	inflightN atomic.Int64
	// baseCtx parents every session context; cancelled at the end of
	// Shutdown so stuck store calls give up.
	baseCtx    context.Context
	cancelBase context.CancelFunc
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
	if opts.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		opts.Hostname = h
	}
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
	setDefault(&opts.MaxConnections, DefaultMaxConnections)
	setDefault(&opts.MaxConnectionsPerIP, DefaultMaxConnectionsPerIP)
	if opts.MaxConnectionRate == 0 {
		opts.MaxConnectionRate = DefaultMaxConnectionRate
	}
	setDefault(&opts.MaxJunkCommands, DefaultMaxJunkCommands)
	setDefault(&opts.MaxSessionDuration, DefaultMaxSessionDuration)
	if opts.Conns == nil {
		opts.Conns = limit.New(limit.Options{
			PerIP: opts.MaxConnectionsPerIP,
			Total: opts.MaxConnections,
			Rate:  max(opts.MaxConnectionRate, 0),
		})
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}

	s := &Server{
		opts:  opts,
		log:   opts.Logger.With("proto", "smtp", "mode", opts.Mode.String()),
		conns: make(map[*conn]struct{}),
	}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	if opts.TLS != nil {
		s.tls = opts.TLS.Clone()
		// Senders on Microsoft's platform abort STARTTLS against Go's
		// crypto/tls when it issues session tickets.
		s.tls.SessionTicketsDisabled = true
	}
	var p [3]byte
	rand.Read(p[:])
	s.connPrefix = hex.EncodeToString(p[:])

	srv := smtp.NewServer(&backend{s: s})
	srv.Domain = opts.Hostname
	srv.MaxMessageBytes = opts.MaxMessageBytes
	srv.MaxRecipients = opts.MaxRecipients
	srv.MaxLineLength = opts.MaxLineLength
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

// Serve accepts connections on ln until Shutdown or until ctx is done. It
// may be called for several listeners of the same mode.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return smtp.ErrServerClosed
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()

	wrapped := limit.Listener(ln, s.opts.Conns, s.refuse)
	inner := &trackingListener{Listener: wrapped, s: s}
	s.log.Debug("serving", "addr", ln.Addr().String())

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	err := s.smtp.Serve(inner)
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// refuse answers a connection over the limits. On implicit TLS a plain-text
// reply would only confuse the client's handshake, so it is just closed.
func (s *Server) refuse(c net.Conn) {
	defer c.Close()
	msg := "Too many connections, try again later"
	if limit.Refusal(c) == limit.ErrRate {
		msg = "Too many connections from your address, slow down"
	}
	s.log.Warn("connection refused", "remote", c.RemoteAddr().String(), "reason", msg)
	if s.opts.Mode == ModeSubmissions {
		return
	}
	c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
	io.WriteString(c, "421 4.7.0 "+s.opts.Hostname+" "+msg+"\r\n")
}

// Shutdown stops the server in two phases (STYLE §6). First it closes the
// listeners and ends every idle connection with a 421 while messages being
// received or delivered are allowed to finish; when ctx is done, it cuts the
// remaining connections and waits for their goroutines.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.draining.Store(true)
	for _, ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.wake()
	}
	s.mu.Unlock()
	s.log.Info("shutting down", "in_flight", s.inflightN.Load())

	done := make(chan struct{})
	go func() {
		s.smtp.Shutdown(context.Background())
		s.inflight.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for c := range s.conns {
			c.raw.Close()
		}
		s.mu.Unlock()
		s.cancelBase()
		<-done
	}
	s.cancelBase()
	return err
}

// inflightCount is the number of messages being received or delivered.
func (s *Server) inflightCount() int64 { return s.inflightN.Load() }

// trackingListener gives each accepted connection our edge (conn.go) and
// registers it for Shutdown.
type trackingListener struct {
	net.Listener
	s *Server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	s := l.s
	c := newConn(s, nc, fmt.Sprintf("%s%x", s.connPrefix, s.connSeq.Add(1)))
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return nil, net.ErrClosed
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	c.log.Info("connect")
	return c, nil
}

func remoteAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

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
