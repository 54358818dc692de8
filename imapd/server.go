package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
)

// DefaultMaxAppendSize is the APPEND literal limit when Options leaves it
// zero; it matches the default SMTP message size limit.
const DefaultMaxAppendSize = 50 << 20

// busyWriteTimeout bounds the write of the "* BYE" refusal to a connection
// over the limits, so a peer that does not read cannot hold the accept loop.
const busyWriteTimeout = 2 * time.Second

// Authenticator checks credentials. *auth.DB implements it.
type Authenticator interface {
	// Authenticate returns auth.ErrBadCredentials or auth.ErrThrottled on
	// refusal.
	Authenticate(ctx context.Context, username, password string, remote netip.Addr) (auth.User, error)
	// Mechanisms lists the SASL mechanisms NewSASLServer accepts.
	Mechanisms() []string
	// NewSASLServer returns a SASL server for mech; done is called once, on
	// success, before the server reports completion.
	NewSASLServer(ctx context.Context, mech string, remote netip.Addr, done func(auth.User)) (sasl.Server, error)
}

// Limiter counts connections per remote address and in total.
// *limit.Conns from auth/limit implements it.
type Limiter interface {
	Acquire(remote netip.Addr) (release func(), ok bool)
}

// Options configures a Server.
type Options struct {
	Logger *slog.Logger
	// TLS is used for STARTTLS, and for every connection when ImplicitTLS is
	// set. Nil disables STARTTLS (and, off loopback, authentication).
	TLS *tls.Config
	// ImplicitTLS makes every accepted connection start with a TLS handshake
	// (port 993).
	ImplicitTLS bool
	// LoopbackIsSecure lets clients on loopback addresses authenticate
	// without TLS, as if the connection were encrypted.
	LoopbackIsSecure bool
	// MaxAppendSize is the largest APPEND literal accepted (APPENDLIMIT);
	// zero means DefaultMaxAppendSize.
	MaxAppendSize int64
	// IdleTimeout is how long an authenticated client may stay silent
	// (IDLE included) before "* BYE Autologout"; zero means 35 minutes
	// (RFC 9051 §5.4: at least 30). LoginTimeout is the same before login;
	// zero means 30 seconds.
	IdleTimeout  time.Duration
	LoginTimeout time.Duration
	// Limiter, if not nil, refuses connections over its per-IP or total
	// limits with "* BYE".
	Limiter Limiter
	Store   Store
	Auth    Authenticator

	// TrustedNetworks are proxies and webmails whose ID field
	// x-originating-ip, sent before login, is taken as the client's address
	// for auth and the logs. From anywhere else the field is ignored. Nil:
	// none.
	TrustedNetworks []netip.Prefix
}

// Server is an IMAP server. One Server serves one kind of listener (plain
// with STARTTLS, or implicit TLS); its listeners share the mailbox states.
type Server struct {
	opts Options
	log  *slog.Logger

	// Two library servers: "secure" lets clients authenticate without TLS
	// (used for loopback connections when LoopbackIsSecure, and for implicit
	// TLS where every connection is encrypted anyway); "plain" only after
	// STARTTLS. imapserver decides LOGINDISABLED and AUTH= per server, so the
	// accept loop hands each connection to the right one.
	secure, plain     *imapserver.Server
	secureLn, plainLn *chanListener
	libWG             sync.WaitGroup
	startOnce         sync.Once

	states *stateRegistry

	baseCtx    context.Context
	baseCancel context.CancelFunc

	connSeq atomic.Uint64

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	acceptWG  sync.WaitGroup
	sessWG    sync.WaitGroup
}

// New checks opts and returns a Server.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("imapd: Options.Store is required")
	}
	if opts.Auth == nil {
		return nil, errors.New("imapd: Options.Auth is required")
	}
	if opts.ImplicitTLS && opts.TLS == nil {
		return nil, errors.New("imapd: ImplicitTLS needs Options.TLS")
	}
	if opts.MaxAppendSize <= 0 {
		opts.MaxAppendSize = DefaultMaxAppendSize
	}
	if opts.MaxAppendSize > math.MaxUint32 {
		opts.MaxAppendSize = math.MaxUint32
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger.With("proto", "imap"),
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
	}
	s.baseCtx, s.baseCancel = context.WithCancel(context.Background())
	s.states = newStateRegistry(opts.Store, s.log)

	libLog := slog.NewLogLogger(opts.Logger.Handler(), slog.LevelError)
	mk := func(insecureAuth bool) *imapserver.Server {
		var starttls *tls.Config
		if !opts.ImplicitTLS {
			starttls = opts.TLS
		}
		return imapserver.New(&imapserver.Options{
			NewSession:   s.newSession,
			Caps:         capabilities(),
			Logger:       libLog,
			TLSConfig:    starttls,
			InsecureAuth: insecureAuth,
			IdleTimeout:  opts.IdleTimeout,
			LoginTimeout: opts.LoginTimeout,
		})
	}
	s.secure, s.plain = mk(true), mk(false)
	s.secureLn, s.plainLn = newChanListener(), newChanListener()
	return s, nil
}

// capabilities is everything we implement beyond what imapserver adds by
// itself (SASL-IR, LITERAL-, STARTTLS, AUTH=, LOGINDISABLED, UNSELECT,
// ENABLE, IDLE, UTF8=ACCEPT, APPENDLIMIT=n from SessionAppendLimit). The
// library panics at connect if a session lacks the interface behind an
// advertised capability, so this list and Session stay in step.
func capabilities() imap.CapSet {
	return imap.CapSet{
		imap.CapIMAP4rev1:        {},
		imap.CapIMAP4rev2:        {},
		imap.CapNamespace:        {},
		imap.CapUIDPlus:          {},
		imap.CapESearch:          {},
		imap.CapSearchRes:        {},
		imap.CapListExtended:     {},
		imap.CapListStatus:       {},
		imap.CapMove:             {},
		imap.CapStatusSize:       {},
		imap.CapBinary:           {},
		imap.CapChildren:         {},
		imap.CapSpecialUse:       {},
		imap.CapCreateSpecialUse: {},
		imap.CapLiteralPlus:      {},
		imap.CapUnauthenticate:   {},
		imap.CapID:               {},
	}
}

func (s *Server) start() {
	s.startOnce.Do(func() {
		for _, p := range []struct {
			srv *imapserver.Server
			ln  *chanListener
		}{{s.secure, s.secureLn}, {s.plain, s.plainLn}} {
			s.libWG.Add(1)
			go func() {
				defer s.libWG.Done()
				if err := p.srv.Serve(p.ln); err != nil {
					s.log.Error("imap server stopped", "err", err)
				}
			}()
		}
	})
}

// Serve accepts connections on ln until ln fails, ctx is done or Shutdown is
// called. It returns nil after Shutdown or cancellation.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errors.New("imapd: server is shut down")
	}
	s.listeners[ln] = struct{}{}
	s.acceptWG.Add(1)
	s.mu.Unlock()
	defer s.acceptWG.Done()
	s.start()

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, syscall.EMFILE) ||
				errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				// Out of file descriptors or an aborted handshake: back off
				// and keep the listener.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed, retrying", "err", err, "dur", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("imapd: accept: %w", err)
		}
		delay = 0
		s.dispatch(c)
	}
}

// dispatch applies the connection limits and hands c to the library server
// that matches its authentication policy.
func (s *Server) dispatch(c net.Conn) {
	remote := remoteAddr(c)
	if s.opts.Limiter != nil {
		release, ok := s.opts.Limiter.Acquire(remote)
		if !ok {
			s.log.Warn("connection refused: too many connections", "remote", remote.String())
			go refuseBusy(c)
			return
		}
		c = &releaseConn{Conn: c, release: release}
	}
	secure := s.opts.ImplicitTLS || (s.opts.LoopbackIsSecure && remote.IsLoopback())
	if s.opts.ImplicitTLS {
		c = tls.Server(c, s.opts.TLS)
	}
	ln := s.plainLn
	if secure {
		ln = s.secureLn
	}
	if !ln.push(c) {
		c.Close()
	}
}

// refuseBusy tells a client over the connection limits to go away
// (RFC 9051 §7.1.5: BYE may be sent at connect instead of a greeting).
func refuseBusy(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(busyWriteTimeout))
	c.Write([]byte("* BYE [UNAVAILABLE] Too many connections, try again later\r\n"))
	c.Close()
}

func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// Shutdown stops accepting, says BYE to every client and waits for the
// sessions to end. When ctx expires first, remaining connections are cut.
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
	s.acceptWG.Wait()
	s.secureLn.Close()
	s.plainLn.Close()

	// Bye waits for any response being written, then closes the
	// connection; each runs on its own so one stuck client cannot hold up
	// the others.
	for _, sess := range sessions {
		go sess.conn.Bye("Server shutting down")
	}

	done := make(chan struct{})
	go func() {
		s.sessWG.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for sess := range s.sessions {
			sess.conn.NetConn().Close()
		}
		s.mu.Unlock()
	}
	s.baseCancel()
	<-done
	// The library servers end when their listeners close; imapserver.Close
	// is not used (its WaitGroup races with a Serve that has not started).
	s.libWG.Wait()
	return err
}

func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	nc := c.NetConn()
	id := strconv.FormatUint(s.connSeq.Add(1), 36)
	remote := remoteAddr(nc)
	sess := &session{
		srv:    s,
		conn:   c,
		id:     id,
		remote: remote,
		client: remote,
		start:  time.Now(),
	}
	sess.log = sess.baseLog()
	sess.ctx, sess.cancel = context.WithCancel(s.baseCtx)

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		sess.cancel()
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down"}
	}
	s.sessions[sess] = struct{}{}
	s.sessWG.Add(1)
	s.mu.Unlock()
	sess.log.Info("connect")
	return sess, nil, nil
}

func (s *Server) removeSession(sess *session) {
	s.mu.Lock()
	_, ok := s.sessions[sess]
	delete(s.sessions, sess)
	s.mu.Unlock()
	if ok {
		s.sessWG.Done()
	}
}

// releaseConn gives the connection's limiter slot back on Close.
type releaseConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *releaseConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// chanListener feeds connections accepted by Serve to a library server.
type chanListener struct {
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return chanAddr{} }

type chanAddr struct{}

func (chanAddr) Network() string { return "imapd" }
func (chanAddr) String() string  { return "imapd" }
