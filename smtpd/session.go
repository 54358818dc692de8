package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/auth"
)

// backend hands go-smtp a session per connection (made at the first EHLO,
// and again after STARTTLS).
type backend struct{ s *Server }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s := b.s
	oc := ourConn(c.Conn())
	if oc == nil {
		// Only possible if someone serves s.smtp on another listener.
		s.log.Error("connection not from our listener")
		return nil, errLocal
	}
	if s.life.Stopping() {
		return nil, errShuttingDown
	}
	ctx, cancel := context.WithCancel(s.baseCtx)
	sess := &session{
		s:      s,
		c:      c,
		conn:   oc,
		ctx:    ctx,
		cancel: cancel,
		helo:   c.Hostname(),
		log:    oc.log,
	}
	return sess, nil
}

// session is one connection's SMTP state after EHLO. go-smtp calls its
// methods from the connection's goroutine, except Data with BDAT (see
// Reset): mu guards what both touch. go-smtp does not know about TLS (our
// edge runs it), so one session lives on across STARTTLS; the TLS state is
// the connection's.
type session struct {
	s      *Server
	c      *smtp.Conn
	conn   *conn
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger

	mu           sync.Mutex
	helo         string // the last EHLO or HELO argument
	user         string // authenticated address, "" before AUTH
	authFailures int

	env envelope
}

// envelope is the SMTP transaction: MAIL, the accepted RCPTs and where each
// one goes after alias resolution.
type envelope struct {
	active bool
	// ctx is the transaction's context: the session's, with a memo of
	// the directory's lookups (auth.WithLookupMemo), so a recipient is
	// resolved and its quota read once for RCPT and delivery together.
	ctx   context.Context
	from  string   // "" for the null reverse-path
	utf8  bool     // SMTPUTF8 given on MAIL
	size  int64    // SIZE given on MAIL, 0 if none
	rcpts []string // as accepted, in order
	// local lists the accepted recipients with local targets, for the
	// delivery pipeline, which decides the accounts (one copy each).
	local []string
	// remote lists foreign addresses for the queue, deduplicated.
	remote    []string
	remoteSet map[string]bool
}

// txContext is the open transaction's context (envelope.ctx), or the
// session's outside one. Only the session's goroutine calls it.
func (s *session) txContext() context.Context {
	if s.env.ctx != nil {
		return s.env.ctx
	}
	return s.ctx
}

func (s *session) authenticated() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.user, s.user != ""
}

// Reset discards the transaction (RSET, a new EHLO, after DATA). With
// BDAT, go-smtp runs Data in its own goroutine and may call Reset (RSET,
// an aborted chunk) while it runs: env is written under mu, and Data works
// on a copy.
func (s *session) Reset() {
	s.mu.Lock()
	s.env = envelope{}
	// A new EHLO (after STARTTLS, say) resets the session: take its name.
	s.helo = s.c.Hostname()
	s.mu.Unlock()
	s.conn.txActive.Store(false)
}

// tls is the connection's TLS state, nil before TLS.
func (s *session) tls() *tls.ConnectionState { return s.conn.tls() }

// Logout ends the session; go-smtp calls it when the connection closes.
func (s *session) Logout() error {
	s.cancel()
	return nil
}

// AuthMechanisms lists what EHLO advertises: only on submission, only
// over TLS (RFC 4954 §4, RFC 8314).
func (s *session) AuthMechanisms() []string {
	if !s.s.opts.Mode.submission() || s.tls() == nil {
		return nil
	}
	if _, ok := s.authenticated(); ok {
		return nil
	}
	return s.s.opts.Directory.Mechanisms()
}

// Auth starts a SASL exchange. go-smtp has already split off the mechanism
// and any initial response (extra spaces after "AUTH PLAIN" are fine: it
// splits on runs of white space), and passes an initial response to the
// first Next, which is how "AUTH LOGIN <base64 user>" works (sent by
// Outlook).
func (s *session) Auth(mech string) (sasl.Server, error) {
	switch {
	case !s.s.opts.Mode.submission():
		return nil, errAuthNotAvailable
	case s.tls() == nil:
		return nil, errEncryptionRequired
	case s.conn.needHelo.Load():
		return nil, errHeloAfterTLS
	case s.s.life.Stopping():
		return nil, errShuttingDown
	}
	mech = strings.ToUpper(mech)
	if !slices.Contains(s.s.opts.Directory.Mechanisms(), mech) {
		return nil, errAuthUnknownMech
	}
	srv, err := s.s.opts.Directory.NewSASLServer(s.ctx, mech, s.conn.remote, func(u auth.User) {
		s.mu.Lock()
		s.user = u.Address
		s.mu.Unlock()
		s.log = s.log.With("user", u.Address)
		s.log.Info("auth success", "mech", mech)
	})
	if err != nil {
		reply, internal := toSMTPError(err)
		if internal {
			s.log.Error("starting SASL", "mech", mech, "err", err)
			reply = errAuthTemporary
		}
		return nil, reply
	}
	return &saslServer{Server: srv, s: s, mech: mech}, nil
}

// saslServer translates the auth package's errors into replies, so that no
// error text reaches the wire, and counts failures.
type saslServer struct {
	sasl.Server
	s    *session
	mech string
}

func (a *saslServer) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := a.Server.Next(response)
	if err == nil {
		return challenge, done, nil
	}
	s := a.s
	reply, internal := toSMTPError(err)
	switch {
	case internal:
		// RFC 4954 §6: a temporary failure of the authentication
		// service is 454 4.7.0; the error text stays in the log.
		s.log.Error("auth error", "mech", a.mech, "err", err)
		reply = errAuthTemporary
	case reply == errAuthThrottled:
		s.log.Warn("auth throttled", "mech", a.mech)
	default:
		s.log.Warn("auth failure", "mech", a.mech, "reply", reply.Code)
	}
	s.mu.Lock()
	s.authFailures++
	n := s.authFailures
	s.mu.Unlock()
	if n >= maxAuthFailures && reply == errAuthFailed {
		// The reply is written, then the next read fails: go-smtp closes.
		s.conn.closeAfterReply()
		return nil, false, errAuthTooManyFails
	}
	return nil, false, reply
}

// Mail starts a transaction. On submission it needs AUTH and checks that
// the authenticated user owns the sender address.
func (s *session) Mail(from string, opts *smtp.MailOptions) (err error) {
	defer s.observe("mail", &err)
	if s.s.life.Stopping() {
		return errShuttingDown
	}
	if s.conn.needHelo.Load() {
		return errHeloAfterTLS
	}
	user, authed := s.authenticated()
	if s.s.opts.Mode.submission() && !authed {
		if s.tls() == nil {
			return errStartTLSFirst
		}
		return errAuthRequired
	}
	if s.env.active {
		// RFC 5321 §4.1.1.2: no MAIL inside an open transaction (go-smtp
		// does not check, and would keep the old recipients).
		return errNestedMail
	}
	env := envelope{utf8: opts.UTF8, size: opts.Size, ctx: auth.WithLookupMemo(s.ctx)}
	if from != "" {
		addr, err := parseAddress(from, opts.UTF8, errBadSender)
		if err != nil {
			return err
		}
		env.from = addr
	}
	if s.s.opts.Mode.submission() {
		ok := false
		if env.from != "" {
			var err error
			ok, err = s.s.opts.Directory.CanSendAs(env.ctx, user, env.from)
			if err != nil {
				return s.fail("checking sender", err)
			}
		}
		if !ok {
			s.log.Warn("sender not owned", "from", env.from)
			return errSenderNotOwned
		}
	}
	if opts.Size > 0 && opts.Size > s.s.opts.MaxMessageBytes {
		return errTooBig
	}
	if s.spaceLow() {
		return errNoSpace
	}
	if err := s.gateMail(env.from); err != nil {
		return err
	}
	env.active = true
	s.mu.Lock()
	s.env = env
	s.mu.Unlock()
	s.conn.txActive.Store(true)
	s.conn.advanced.Store(true)
	s.log.Debug("mail from", "from", env.from, "size", opts.Size)
	return nil
}

// Rcpt adds a recipient: a local address is resolved (aliases,
// sub-addresses, catch-all) and each target account's quota checked; a
// foreign address is accepted only from an authenticated user, for the
// queue.
func (s *session) Rcpt(to string, opts *smtp.RcptOptions) (err error) {
	defer s.observe("rcpt", &err)
	err = s.rcpt(to)
	if err == errNoSuchUser || err == errRelayDenied {
		s.conn.badRcpts++
		if s.conn.badRcpts >= maxBadRecipients {
			s.log.Warn("too many invalid recipients, closing", "count", s.conn.badRcpts)
			s.conn.closeAfterReply()
			return errTooManyBadRcpts
		}
	}
	if err == nil {
		s.conn.advanced.Store(true)
	}
	return err
}

func (s *session) rcpt(to string) error {
	if s.s.life.Stopping() {
		return errShuttingDown
	}
	if !s.env.active {
		// go-smtp checks the order itself; this guards a failed MAIL.
		return errNeedMail
	}
	if s.spaceLow() {
		// Again at RCPT: a MAIL accepted just before the disk went low
		// still gets its answer before the message is sent.
		return errNoSpace
	}
	addr, err := parseAddress(to, s.env.utf8, errBadRecipient)
	if err != nil {
		return err
	}
	_, authed := s.authenticated()
	res, err := s.resolveRcpt(addr)
	switch {
	case errors.Is(err, auth.ErrNotLocal):
		if !authed {
			s.log.Warn("relay denied", "rcpt", addr)
			return errRelayDenied
		}
		res = auth.Resolution{Remote: []string{addr}}
	case errors.Is(err, auth.ErrNoSuchUser), errors.Is(err, auth.ErrInvalidAddress):
		s.log.Info("unknown recipient", "rcpt", addr)
		return errNoSuchUser
	case err != nil:
		return s.fail("resolving recipient", err)
	}
	if len(res.Local) == 0 && len(res.Remote) == 0 {
		s.log.Info("recipient resolves to nobody", "rcpt", addr)
		return errNoSuchUser
	}
	if len(res.Remote) > 0 && s.s.opts.Queue == nil {
		s.log.Error("foreign recipient but no queue configured", "rcpt", addr)
		return errLocal
	}
	for _, acct := range res.Local {
		if err := s.checkQuota(acct); err != nil {
			return err
		}
	}
	if err := s.gateRcpt(addr); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	env := &s.env
	if env.remoteSet == nil {
		env.remoteSet = make(map[string]bool)
	}
	if len(res.Local) > 0 && !slices.Contains(env.local, addr) {
		env.local = append(env.local, addr)
	}
	for _, r := range res.Remote {
		if !env.remoteSet[r] {
			env.remoteSet[r] = true
			env.remote = append(env.remote, r)
		}
	}
	env.rcpts = append(env.rcpts, addr)
	s.log.Debug("rcpt to", "rcpt", addr, "local", len(res.Local), "remote", len(res.Remote))
	return nil
}

// checkQuota refuses a recipient whose account is full now (452 4.2.2, the
// client keeps it for later while the others proceed) or could never take a
// message of the declared SIZE (552 5.2.2).
func (s *session) checkQuota(account string) error {
	ctx := s.txContext()
	a, err := s.s.opts.Store.Open(ctx, account)
	if err != nil {
		return s.fail("opening account", err)
	}
	defer a.Close()
	used, limit, err := a.Usage(ctx)
	if err != nil {
		return s.fail("reading usage", err)
	}
	if limit <= 0 {
		return nil
	}
	if s.env.size > limit {
		s.log.Info("message larger than quota", "rcpt", account, "size", s.env.size)
		return errMessageOverQuota
	}
	if used >= limit || used+s.env.size > limit {
		s.log.Info("mailbox full", "rcpt", account)
		return errMailboxFull
	}
	return nil
}

// spaceLow reports whether new mail must wait for disk space (package
// diskspace; RFC 3463 §3.5: 4.3.1 "mail system full").
func (s *session) spaceLow() bool {
	if sp := s.s.opts.Space; sp != nil && sp.Low() {
		s.log.Info("refused: free disk space below the reserve")
		return true
	}
	return false
}

// fail translates err and logs it when internal.
func (s *session) fail(what string, err error) error {
	reply, internal := toSMTPError(err)
	if internal {
		s.log.Error(what, "err", err)
	}
	return reply
}
