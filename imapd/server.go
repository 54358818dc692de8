package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/server"
)

// DefaultMaxAppendSize is the APPEND literal limit when Options leaves it
// zero; it matches the default SMTP message size limit.
const DefaultMaxAppendSize = 50 << 20

// busyWriteTimeout bounds the write of the "* BYE" refusal to a connection
// over the limits, so a peer that does not read cannot hold a refusal slot.
const busyWriteTimeout = 2 * time.Second

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
	// Hostname is this server's name: an absolute IMAP URL in CATENATE
	// (RFC 4469) must name it. Empty: only relative URLs are accepted.
	Hostname string
	// IdleTimeout is how long an authenticated client may stay silent
	// (IDLE included) before "* BYE Autologout"; zero means 35 minutes
	// (RFC 9051 §5.4: at least 30). LoginTimeout is the same before login;
	// zero means 30 seconds.
	IdleTimeout  time.Duration
	LoginTimeout time.Duration
	// Conns, if not nil, limits connections in total, per client address
	// and in rate (package server); a connection over a limit gets "* BYE
	// [UNAVAILABLE]" instead of a greeting. Share one across servers to
	// make the limits span them. IMAP connections are never evicted.
	Conns *limit.Conns
	Store Store
	Auth  auth.Authenticator
	// Space, when set, says when data_dir's free space is below the
	// reserve: APPEND is then refused with NO [OVERQUOTA]; everything else
	// goes on (*diskspace.Monitor).
	Space Space

	// TrustedNetworks are proxies and webmails whose ID field
	// x-originating-ip, sent before login, is taken as the client's address
	// for auth and the logs. From anywhere else the field is ignored. Nil:
	// none.
	TrustedNetworks []netip.Prefix

	// CommandDone, when set, hears each command's name ("UID FETCH"; any
	// atom a client sent, so bound it before using it as a label) and its
	// time from command line to tagged reply. cmd feeds package metrics.
	// It runs on the connection's goroutine and must not block.
	CommandDone func(name string, dur time.Duration)
}

// Space reports whether free disk space is below the reserve; asked at
// every APPEND, so it must be cheap.
type Space interface {
	Low() bool
}

// Server is an IMAP server. One Server serves one kind of listener (plain
// with STARTTLS, or implicit TLS); its listeners share the mailbox states.
type Server struct {
	opts Options
	log  *slog.Logger

	// life accepts, limits, registers and shuts down the connections.
	life *server.Lifecycle

	// Two library servers: "secure" lets clients authenticate without TLS
	// (used for loopback connections when LoopbackIsSecure, and for implicit
	// TLS where every connection is encrypted anyway); "plain" only after
	// STARTTLS. imapserver decides LOGINDISABLED and AUTH= per server, so
	// handle gives each connection to the right one.
	secure, plain     *imapserver.Server
	secureLn, plainLn *server.Handoff
	libWG             sync.WaitGroup
	startOnce         sync.Once

	states *stateRegistry
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
		opts: opts,
		log:  opts.Logger.With("proto", "imap"),
	}
	life, err := server.New(server.Options{Logger: s.log, Conns: opts.Conns, Refuse: refuseBusy, Handle: s.handle})
	if err != nil {
		return nil, err
	}
	s.life = life
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
			CommandDone:  opts.CommandDone,
		})
	}
	s.secure, s.plain = mk(true), mk(false)
	s.secureLn, s.plainLn = server.NewHandoff(), server.NewHandoff()
	return s, nil
}

// capabilities is everything we implement beyond what imapserver adds by
// itself (SASL-IR, LITERAL-, STARTTLS, AUTH=, LOGINDISABLED, UNSELECT,
// ENABLE, IDLE, UTF8=ACCEPT, APPENDLIMIT=n from SessionAppendLimit). The
// library panics at connect if a session lacks the interface behind an
// advertised capability, so this list and Session stay in step.
func capabilities() imap.CapSet {
	caps := imap.CapSet{
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
		imap.CapContextSearch:    {},
		imap.CapPartial:          {},
		imap.CapCondStore:        {},
		imap.CapQResync:          {},
		imap.CapSort:             {},
		imap.CapSortDisplay:      {},
		imap.CapESort:            {},
		"CONTEXT=SORT":           {},
		"THREAD=REFERENCES":      {},
		"THREAD=ORDEREDSUBJECT":  {},
		imap.CapMultiAppend:      {},
		imap.CapCatenate:         {},
	}
	for _, c := range slices.Concat(quotaCaps, objectIDCaps, notifyCaps, []imap.Cap{imapserver.CapCompressDeflate}) {
		caps[c] = struct{}{}
	}
	return caps
}

func (s *Server) start() {
	s.startOnce.Do(func() {
		for _, p := range []struct {
			srv *imapserver.Server
			ln  *server.Handoff
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

// Serve accepts connections on ln until Shutdown (then it returns
// ErrServerClosed) or until ctx is done (ctx.Err()).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.start()
	return s.life.Serve(ctx, ln)
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = server.ErrServerClosed

// handle gives c to the library server that matches its authentication
// policy and waits until its session has ended.
func (s *Server) handle(c *server.Conn) {
	lc := &libConn{Conn: c, ended: make(chan struct{})}
	var nc net.Conn = lc
	secure := s.opts.ImplicitTLS || (s.opts.LoopbackIsSecure && c.Remote().IsLoopback())
	if s.opts.ImplicitTLS {
		nc = tls.Server(lc, s.opts.TLS)
	}
	ln := s.plainLn
	if secure {
		ln = s.secureLn
	}
	if !ln.Give(nc) {
		return
	}
	<-lc.ended
}

// refuseBusy tells a client over the connection limits to go away
// (RFC 9051 §7.1.5: BYE may be sent at connect instead of a greeting).
func refuseBusy(c net.Conn, _ error) {
	c.SetWriteDeadline(time.Now().Add(busyWriteTimeout))
	c.Write([]byte("* BYE [UNAVAILABLE] Too many connections, try again later\r\n"))
}

// Shutdown stops accepting, says BYE to every client and waits for the
// sessions to end. When ctx expires first, remaining connections are cut
// (package server).
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.life.Shutdown(ctx)
	// A Serve that has not started the library servers by now never will
	// (its start finds the Once done), and one that has finished adding
	// them to libWG before the Wait below: Add never races with Wait.
	s.startOnce.Do(func() {})
	// The library servers end when their listeners close; imapserver.Close
	// is not used (its WaitGroup races with a Serve that has not started).
	s.secureLn.Close()
	s.plainLn.Close()
	s.libWG.Wait()
	s.states.closeIdle()
	return err
}

func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	lc := libConnOf(c.NetConn())
	if lc == nil {
		return nil, nil, errors.New("imapd: connection not from our listener")
	}
	sess := &session{
		srv:    s,
		conn:   c,
		lc:     lc,
		id:     lc.ID(),
		remote: lc.Remote(),
		client: lc.Remote(),
		start:  time.Now(),
	}
	sess.log = sess.baseLog()
	if s.life.Stopping() {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down"}
	}
	sess.ctx, sess.cancel = context.WithCancel(lc.Context())
	lc.hasSession.Store(true)
	// Bye waits for any response being written, then closes the
	// connection; the lifecycle runs it on its own goroutine.
	lc.OnStop(func() { c.Bye("Server shutting down") })
	sess.log.Info("connect")
	return sess, nil, nil
}

// libConn is what imapserver gets for one connection (under TLS on
// imaps): the lifecycle's Conn, and the moment its session has ended,
// which is after the library closed the connection when it said BYE.
type libConn struct {
	*server.Conn
	hasSession atomic.Bool // newSession accepted it: Session.Close ends it
	ended      chan struct{}
	once       sync.Once
}

func (c *libConn) end() { c.once.Do(func() { close(c.ended) }) }

// Close closes the connection; without a session that is its end.
func (c *libConn) Close() error {
	err := c.Conn.Close()
	if !c.hasSession.Load() {
		c.end()
	}
	return err
}

// libConnOf finds our connection under the library's.
func libConnOf(nc net.Conn) *libConn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	lc, _ := nc.(*libConn)
	return lc
}
