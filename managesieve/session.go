package managesieve

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/server"
	"github.com/posthouse/posthouse/sieve"
	"github.com/posthouse/posthouse/sievestore"
)

// state is a ManageSieve session state (RFC 5804 §1.2: non-authenticated,
// authenticated).
type state int

const (
	stateNonAuth state = iota
	stateAuth
)

func (st state) String() string {
	if st == stateAuth {
		return "authenticated"
	}
	return "non-authenticated"
}

// Session-ending conditions the loop tells apart.
var (
	errStopping = server.ErrStopping
	errAborted  = server.ErrAborted
)

// session is one connection. Only its own goroutine touches its fields,
// except dl, which Shutdown uses to interrupt it.
type session struct {
	srv     *Server
	id      string
	raw     net.Conn // the connection as accepted (a *server.Conn)
	conn    net.Conn // raw, or the TLS connection over it
	br      *bufio.Reader
	in      *reader
	w       *bufio.Writer
	log     *slog.Logger
	remote  netip.Addr
	tlsOn   bool
	started time.Time
	ctx     context.Context
	cancel  context.CancelFunc

	// Deadlines and Shutdown's first phase (finish the current
	// command, then close).
	dl *server.Deadlines

	state        state
	protoErrors  int
	authFailures int

	// SASL exchange in progress (AUTHENTICATE).
	sasl     sasl.Server
	saslMech string
	saslUser *auth.User

	// Authenticated state.
	user string

	// Counters for the disconnect log line.
	commands int
	stored   int
	bytesIn  int64
}

// newSession starts a session on c; parent is the connection's context,
// which the lifecycle cancels when it cuts the connection.
func newSession(parent context.Context, srv *Server, c net.Conn, id string, remote netip.Addr) *session {
	ctx, cancel := context.WithCancel(parent)
	s := &session{
		srv:     srv,
		id:      id,
		raw:     c,
		conn:    c,
		remote:  remote,
		started: time.Now(),
		ctx:     ctx,
		cancel:  cancel,
		dl:      server.NewDeadlines(ctx, c),
	}
	s.log = srv.log.With("conn", s.id, "remote", s.remote.String())
	s.br = bufio.NewReaderSize(connReader{s}, 16<<10)
	s.w = bufio.NewWriterSize(connWriter{s}, 32<<10)
	s.in = &reader{br: s.br, arm: func() error { return s.dl.ArmRead(s.readTimeout()) }}
	s.setLimits()
	return s
}

// setLimits sizes the reader for the state: before authentication no
// string may be larger than maxString, so a client that has not logged in
// cannot make us hold a script's worth of memory.
func (s *session) setLimits() {
	if s.state == stateNonAuth {
		s.in.maxScript, s.in.maxDiscard = maxString, preAuthDiscard
		return
	}
	s.in.maxScript = s.srv.opts.Store.MaxScriptBytes()
	s.in.maxDiscard = max(4*int64(s.in.maxScript), minDiscard)
}

// connReader and connWriter read and write the session's current
// connection (plain, then TLS after STARTTLS).
type connReader struct{ s *session }

func (c connReader) Read(p []byte) (int, error) { return c.s.conn.Read(p) }

// connWriter renews the write deadline before every write.
type connWriter struct{ s *session }

func (c connWriter) Write(p []byte) (int, error) {
	if err := c.s.dl.ArmWrite(c.s.srv.opts.WriteTimeout); err != nil {
		return 0, err
	}
	return c.s.conn.Write(p)
}

// readTimeout is the inactivity limit for the next read.
func (s *session) readTimeout() time.Duration {
	o := &s.srv.opts
	if s.state == stateAuth {
		return o.IdleTimeout
	}
	left := time.Until(s.started.Add(o.LoginTotal))
	return max(min(o.LoginTimeout, left), time.Millisecond)
}

// run serves the connection until it ends. The greeting is the capability
// list and an OK (RFC 5804 §1.7).
func (s *session) run() {
	defer s.finish()
	s.log.Info("connect")
	if err := s.send(s.greeting()); err != nil {
		return
	}
	for {
		r, ok := s.next()
		if !ok {
			return
		}
		if r.protoErr {
			s.protoErrors++
			if s.protoErrors >= s.srv.opts.MaxErrors {
				s.log.Warn("too many protocol errors; closing", "count", s.protoErrors)
				r = replyTooManyErrors
			}
		}
		if err := s.send(r); err != nil {
			return
		}
		if r.startTLS {
			if err := s.startTLS(); err != nil {
				s.log.Info("STARTTLS handshake failed", "err", err)
				return
			}
			// RFC 5804 §2.2: after the handshake the server sends the
			// capabilities again, then OK, unasked.
			if err := s.send(s.greeting()); err != nil {
				return
			}
		}
		if r.quit {
			return
		}
	}
}

// greeting is the capability response sent at connect and after
// STARTTLS.
func (s *session) greeting() reply {
	r := s.capabilities()
	r.text = "Posthouse ManageSieve ready on " + s.srv.opts.Hostname
	return r
}

// next reads one command (or a SASL response) and turns it into a reply.
// ok is false when the connection is gone and nothing more can be written.
func (s *session) next() (reply, bool) {
	if s.sasl != nil {
		val, abort, err := s.in.readResponse()
		s.bytesIn += s.in.size
		if err != nil {
			s.cancelSASL()
			return s.readFailed(err)
		}
		return s.handleSASLResponse(val, abort), true
	}
	cmd, err := s.in.readCommand()
	s.bytesIn += s.in.size
	if err != nil {
		return s.readFailed(err)
	}
	s.commands++
	if s.log.Enabled(s.ctx, slog.LevelDebug) {
		s.log.Debug("command", "cmd", redact(cmd), "state", s.state.String(), "size", cmd.size)
	}
	return s.dispatch(cmd), true
}

// readFailed turns a read error into the reply that ends or answers it.
func (s *session) readFailed(err error) (reply, bool) {
	var (
		ne   net.Error
		perr *parseError
	)
	switch {
	case errors.As(err, &perr):
		r := protoError(perr.msg)
		r.code = perr.code
		return r, true
	case errors.Is(err, errAborted):
		return reply{}, false
	case errors.Is(err, errStopping) || s.dl.Stopping():
		return replyShuttingDown, true
	case errors.Is(err, errFlood):
		s.log.Warn("input too large to skip; closing", "state", s.state.String())
		return replyFlood, true
	case errors.As(err, &ne) && ne.Timeout():
		s.log.Info("idle timeout", "state", s.state.String())
		return replyIdle, true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return reply{}, false
	}
	s.log.Debug("read failed", "err", err)
	return reply{}, false
}

// send writes r and flushes unless more pipelined commands are waiting.
func (s *session) send(r reply) error {
	err := writeReply(s.w, r)
	if err == nil && (s.br.Buffered() == 0 || r.quit || r.startTLS || r.cont) {
		err = s.w.Flush()
	}
	if err != nil {
		s.log.Debug("write failed", "err", err)
		return err
	}
	if s.log.Enabled(s.ctx, slog.LevelDebug) && !r.cont {
		// Status lines only: scripts and SASL challenges stay out of logs.
		s.log.Debug("reply", "status", [...]string{"OK", "NO", "BYE"}[r.status], "code", r.code, "text", r.text, "size", len(r.data))
	}
	return nil
}

// redact gives a command for the debug log without secrets or scripts:
// AUTHENTICATE loses its initial response, PUTSCRIPT and CHECKSCRIPT their
// script (its size is logged).
func redact(cmd command) string {
	var b strings.Builder
	b.WriteString(cmd.name)
	for i, a := range cmd.args {
		b.WriteByte(' ')
		switch {
		case cmd.name == "AUTHENTICATE" && i == 1, scriptArg(cmd.name, i):
			fmt.Fprintf(&b, "<%d octets>", len(a.val))
		case a.kind == argAtom:
			b.Write(a.val)
		default:
			b.Write(appendString(nil, string(a.val)))
		}
	}
	return b.String()
}

// startTLS upgrades after STARTTLS's OK. Anything the client pipelined
// behind STARTTLS was sent in the clear and is thrown away (RFC 5804 §2.2:
// the client waits for the reply; pipelined plaintext would be an
// injection).
func (s *session) startTLS() error {
	if n := s.br.Buffered(); n > 0 {
		s.log.Warn("discarding data pipelined after STARTTLS", "size", n)
	}
	if err := s.dl.ArmRead(handshakeTimeout); err != nil {
		return err
	}
	if err := s.dl.ArmWrite(handshakeTimeout); err != nil {
		return err
	}
	tc := tls.Server(s.raw, s.srv.opts.TLS)
	if err := tc.HandshakeContext(s.ctx); err != nil {
		return err
	}
	st := tc.ConnectionState()
	s.conn = tc
	s.tlsOn = true
	s.br.Reset(connReader{s})
	s.log.Info("TLS up", "version", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite))
	return nil
}

// secure reports whether credentials may be sent on this connection.
func (s *session) secure() bool {
	return s.tlsOn || s.srv.opts.LoopbackIsSecure && s.remote.IsLoopback()
}

// finish closes the connection and logs the session.
func (s *session) finish() {
	s.conn.Close()
	s.cancel()
	s.log.Info("disconnect", "dur", time.Since(s.started).Round(time.Millisecond),
		"state", s.state.String(), "commands", s.commands, "stored", s.stored, "size", s.bytesIn)
}

// translate turns an error from the store or auth into a reply. It is the
// only place such errors meet the wire: sentinels get their RFC 5804 §1.3
// response codes, a compile error its line, anything else is logged and
// becomes NO (TRYLATER) without its text.
func (s *session) translate(op string, err error) reply {
	var serr *sieve.Error
	switch {
	case errors.As(err, &serr):
		return noReply("", fmt.Sprintf("line %d: %s (column %d)", serr.Line, serr.Msg, serr.Column))
	case errors.Is(err, sievestore.ErrTooLarge):
		return noReply("QUOTA/MAXSIZE", fmt.Sprintf("script is larger than %d octets", s.srv.opts.Store.MaxScriptBytes()))
	case errors.Is(err, sievestore.ErrTooManyScripts):
		return noReply("QUOTA/MAXSCRIPTS", "too many scripts; delete one first")
	case errors.Is(err, sievestore.ErrQuota):
		return noReply("QUOTA", "over quota")
	case errors.Is(err, sievestore.ErrNotFound):
		return noReply("NONEXISTENT", "no such script")
	case errors.Is(err, sievestore.ErrExists):
		return noReply("ALREADYEXISTS", "a script with that name exists")
	case errors.Is(err, sievestore.ErrActive):
		return noReply("ACTIVE", "the script is active; activate another or none first")
	case errors.Is(err, sievestore.ErrBadName):
		return protoError("invalid script name")
	case errors.Is(err, auth.ErrBadCredentials):
		return noReply("", "authentication failed")
	case errors.Is(err, auth.ErrThrottled):
		return noReply("TRYLATER", "too many failed logins, try again later")
	case errors.Is(err, errStopping), s.ctx.Err() != nil:
		return replyShuttingDown
	}
	s.log.Error(op+" failed", "err", err, "state", s.state.String())
	return replyTempFail
}

// cancelSASL abandons an AUTHENTICATE exchange in progress.
func (s *session) cancelSASL() {
	s.sasl = nil
	s.saslMech = ""
	s.saslUser = nil
}
