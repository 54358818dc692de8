package pop3d

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/server"
)

// state is a POP3 session state (RFC 1939 §3).
type state int

const (
	stateAuthorization state = iota
	stateTransaction
	stateUpdate
)

func (st state) String() string {
	switch st {
	case stateAuthorization:
		return "AUTHORIZATION"
	case stateTransaction:
		return "TRANSACTION"
	default:
		return "UPDATE"
	}
}

// Session-ending conditions the loop tells apart.
var (
	errStopping    = server.ErrStopping
	errAborted     = server.ErrAborted
	errLineTooLong = errors.New("pop3d: line too long")
	errLineFlood   = errors.New("pop3d: overlong line without end")
)

// session is one connection. Only its own goroutine touches its fields,
// except dl, which Shutdown uses to interrupt it.
type session struct {
	srv     *Server
	id      string
	raw     net.Conn // the connection as accepted (a *server.Conn)
	conn    net.Conn // raw, or the TLS connection over it
	r       *bufio.Reader
	w       *bufio.Writer
	buf     []byte // copy buffer for message bodies
	line    []byte // line assembly buffer
	log     *slog.Logger
	remote  netip.Addr
	tlsOn   bool
	started time.Time
	ctx     context.Context
	cancel  context.CancelFunc

	// Deadlines and Shutdown's first phase (finish the current
	// command, then close); in phase 2 the lifecycle cuts raw and
	// cancels ctx.
	dl *server.Deadlines

	state        state
	protoErrors  int
	authFailures int

	// AUTHORIZATION state.
	pendingUser string      // from USER, waiting for PASS
	sasl        sasl.Server // an AUTH exchange in progress
	saslUser    *auth.User  // set by the SASL server's done callback

	// TRANSACTION state.
	user   string // the logged-in account
	acct   Account
	unlock func()
	drop   *maildrop

	// Counters for the disconnect log line.
	retrieved int
	bytesOut  int64
	expunged  int
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
	s.r = bufio.NewReaderSize(connReader{s}, 4<<10)
	s.w = bufio.NewWriterSize(connWriter{s}, 32<<10)
	s.buf = make([]byte, 32<<10)
	return s
}

// connReader and connWriter read and write the session's current
// connection (plain, then TLS after STLS).
type connReader struct{ s *session }

func (c connReader) Read(p []byte) (int, error) { return c.s.conn.Read(p) }

// connWriter renews the write deadline before every write, so a slow but
// moving client can take a large RETR while a stalled one is cut off.
type connWriter struct{ s *session }

func (c connWriter) Write(p []byte) (int, error) {
	if err := c.s.dl.ArmWrite(c.s.srv.opts.WriteTimeout); err != nil {
		return 0, err
	}
	return c.s.conn.Write(p)
}

// readTimeout is the inactivity limit for the next command.
func (s *session) readTimeout() time.Duration {
	o := &s.srv.opts
	if s.state != stateAuthorization {
		return o.IdleTimeout
	}
	left := time.Until(s.started.Add(o.LoginTotal))
	return max(min(o.LoginTimeout, left), time.Millisecond)
}

// run serves the connection until it ends.
func (s *session) run() {
	defer s.finish()
	s.log.Info("connect", "tls", s.srv.opts.ImplicitTLS)
	if s.srv.opts.ImplicitTLS {
		if err := s.handshake(); err != nil {
			s.log.Info("TLS handshake failed", "err", err)
			return
		}
	}
	greeting := okReply("Posthouse POP3 server ready on " + s.srv.opts.Hostname)
	if err := s.send(greeting); err != nil {
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
				s.log.Info("STLS handshake failed", "err", err)
				return
			}
		}
		if r.quit {
			return
		}
	}
}

// next reads one line and turns it into a reply. ok is false when the
// connection is gone and nothing more can be written.
func (s *session) next() (reply, bool) {
	limit := s.srv.opts.MaxLineLength
	if s.sasl != nil {
		limit = maxSASLLine
	}
	err := s.dl.ArmRead(s.readTimeout())
	var line []byte
	if err == nil {
		line, err = s.readLine(limit)
	}
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, errAborted):
			return reply{}, false
		case errors.Is(err, errStopping) || s.dl.Stopping():
			return replyShuttingDown, true
		case errors.Is(err, errLineTooLong):
			s.cancelSASL()
			return replyLineTooLong, true
		case errors.Is(err, errLineFlood):
			s.log.Warn("overlong line; closing")
			r := replyLineTooLong
			r.quit = true
			return r, true
		case errors.As(err, &ne) && ne.Timeout():
			s.log.Info("idle timeout", "state", s.state.String())
			return replyIdle, true
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			return reply{}, false
		default:
			s.log.Debug("read failed", "err", err)
			return reply{}, false
		}
	}
	if s.sasl != nil {
		return s.handleSASLResponse(line), true
	}
	cmd, err := parseCommand(line)
	if err != nil {
		if errors.Is(err, errBadKeyword) {
			return replyUnknownCommand, true
		}
		return replySyntax, true
	}
	if s.log.Enabled(s.ctx, slog.LevelDebug) {
		s.log.Debug("command", "line", redact(cmd), "state", s.state.String())
	}
	switch s.state {
	case stateAuthorization:
		return s.dispatchAuthorization(cmd), true
	case stateTransaction:
		return s.dispatchTransaction(cmd), true
	default:
		return replyWrongState, true
	}
}

// readLine reads one line of at most limit octets including its end.
// Lines end in CRLF; a bare LF is accepted too, and the terminator is
// stripped. An overlong line is discarded up to its end (errLineTooLong)
// so the session stays in step; one without an end in sight is
// errLineFlood.
func (s *session) readLine(limit int) ([]byte, error) {
	s.line = s.line[:0]
	n := 0
	for {
		frag, err := s.r.ReadSlice('\n')
		n += len(frag)
		if n <= limit {
			s.line = append(s.line, frag...)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if n > maxDiscard {
				return nil, errLineFlood
			}
			continue
		}
		return nil, err
	}
	if n > limit {
		return nil, errLineTooLong
	}
	line := s.line[:len(s.line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

// send writes r and flushes unless more pipelined commands are waiting
// (RFC 2449 §6.6: replies to a pipelined batch may go out together).
func (s *session) send(r reply) error {
	if c, ok := r.body.(io.Closer); ok {
		defer c.Close()
	}
	n, err := writeReply(s.w, r, s.buf)
	s.bytesOut += n
	if err == nil && (s.r.Buffered() == 0 || r.quit || r.startTLS || r.cont) {
		err = s.w.Flush()
	}
	if err != nil {
		if errors.Is(err, errBodyRead) {
			s.log.Error("reading message failed mid-reply; closing", "err", err)
		} else {
			s.log.Debug("write failed", "err", err)
		}
		return err
	}
	if r.sent != nil {
		r.sent()
	}
	if s.log.Enabled(s.ctx, slog.LevelDebug) && !r.cont {
		// Status lines only: bodies and SASL challenges stay out of logs.
		s.log.Debug("reply", "ok", r.ok, "code", r.code, "text", r.text, "lines", len(r.lines), "size", n)
	}
	return nil
}

// redact gives a command for the debug log without secrets: PASS loses
// its argument, AUTH its initial response. SASL responses are never
// logged at all.
func redact(cmd command) string {
	switch {
	case cmd.verb == "PASS":
		return "PASS ***"
	case cmd.verb == "AUTH" && len(cmd.args) == 2:
		return "AUTH " + cmd.args[0] + " ***"
	case len(cmd.args) == 0:
		return cmd.verb
	}
	return cmd.verb + " " + strings.Join(cmd.args, " ")
}

// handshake runs the server side of a TLS handshake on the raw connection.
func (s *session) handshake() error {
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
	s.log.Info("TLS up", "version", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite))
	return nil
}

// startTLS upgrades after STLS's +OK. Anything the client pipelined behind
// STLS was sent in the clear and is thrown away (RFC 2595 §4: the client
// waits for the reply; pipelined plaintext would be an injection).
func (s *session) startTLS() error {
	if n := s.r.Buffered(); n > 0 {
		s.log.Warn("discarding data pipelined after STLS", "size", n)
	}
	if err := s.handshake(); err != nil {
		return err
	}
	s.r.Reset(connReader{s})
	s.pendingUser = ""
	return nil
}

// secure reports whether credentials may be sent on this connection.
func (s *session) secure() bool {
	return s.tlsOn || s.srv.opts.LoopbackIsSecure && s.remote.IsLoopback()
}

// finish releases everything the session holds. Deletions are applied
// only by QUIT; here they are dropped.
func (s *session) finish() {
	if s.acct != nil {
		if s.state == stateTransaction && s.drop != nil {
			// The client went away without QUIT (or we are shutting
			// down): no deletions, but the messages it did retrieve are
			// recorded as seen for IMAP.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), cleanupTimeout)
			if err := s.drop.markSeen(ctx, s.acct, false); err != nil {
				s.log.Error("marking retrieved messages seen failed", "err", err)
			}
			cancel()
			if n := s.drop.deletedCount(); n > 0 {
				s.log.Info("session ended without QUIT; deletions not applied", "count", n)
			}
		}
		s.releaseMaildrop()
	}
	s.conn.Close()
	s.cancel()
	s.log.Info("disconnect", "dur", time.Since(s.started).Round(time.Millisecond),
		"state", s.state.String(), "retrieved", s.retrieved, "expunged", s.expunged, "size", s.bytesOut)
}

func (s *session) releaseMaildrop() {
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
	if s.acct != nil {
		if err := s.acct.Close(); err != nil && !errors.Is(err, mailstore.ErrClosed) {
			s.log.Warn("closing account failed", "err", err)
		}
		s.acct = nil
	}
	s.drop = nil
}

// translate turns an error from the store or auth into a reply. It is the
// only place such errors meet the wire: sentinels get their RFC 2449 / RFC
// 3206 codes, anything else is logged and becomes a generic temporary
// failure.
func (s *session) translate(op string, err error) reply {
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		return errReply("AUTH", "authentication failed")
	case errors.Is(err, auth.ErrThrottled):
		return errReply("SYS/TEMP", "too many failed logins, try again later")
	case errors.Is(err, mailstore.ErrInUse):
		return errReply("IN-USE", "maildrop is locked by another POP3 session")
	case errors.Is(err, mailstore.ErrNoSuchMessage), errors.Is(err, os.ErrNotExist):
		return errReply("", "message was removed from the server")
	case errors.Is(err, errStopping), s.ctx.Err() != nil:
		return replyShuttingDown
	}
	s.log.Error(op+" failed", "err", err, "state", s.state.String())
	return replyTempFail
}

// cancelSASL abandons an AUTH exchange in progress.
func (s *session) cancelSASL() {
	s.sasl = nil
	s.saslUser = nil
}
