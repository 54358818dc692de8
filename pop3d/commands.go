package pop3d

import (
	"encoding/base64"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
)

// handler answers one command; cmd has the argument count its table entry
// asks for.
type handler func(s *session, cmd command) reply

// anyArgs marks a table entry whose handler checks its arguments itself.
const anyArgs = -1

// commandSpec is a verb's entry in a state's command table.
type commandSpec struct {
	args   int // exactly this many arguments, or anyArgs
	handle handler
}

// authorizationCommands are the commands of the AUTHORIZATION state (RFC
// 1939 §4); transactionCommands those of TRANSACTION (RFC 1939 §5). A verb
// of the other state is a state error rather than unknown.
var (
	authorizationCommands = map[string]commandSpec{
		"CAPA": {0, (*session).handleCapa},
		"STLS": {0, (*session).handleStls},
		"USER": {anyArgs, (*session).handleUser},
		"PASS": {anyArgs, (*session).handlePass},
		"AUTH": {anyArgs, (*session).handleAuth},
		"APOP": {anyArgs, func(*session, command) reply {
			return protoError("APOP is not supported; use USER/PASS or AUTH")
		}},
		"QUIT": {anyArgs, func(*session, command) reply {
			return reply{ok: true, text: "Posthouse POP3 server signing off", quit: true}
		}},
	}
	transactionCommands = map[string]commandSpec{
		"STAT": {0, (*session).handleStat},
		"LIST": {anyArgs, (*session).handleList},
		"UIDL": {anyArgs, (*session).handleUIDL},
		"RETR": {1, (*session).handleRetr},
		"TOP":  {2, (*session).handleTop},
		"DELE": {1, (*session).handleDele},
		"NOOP": {0, func(*session, command) reply { return okReply("") }},
		"RSET": {0, (*session).handleRset},
		"QUIT": {anyArgs, (*session).handleQuit},
		"CAPA": {0, (*session).handleCapa},
	}
)

// dispatchAuthorization handles a command in the AUTHORIZATION state.
func (s *session) dispatchAuthorization(cmd command) reply {
	return s.dispatch(cmd, authorizationCommands, transactionCommands)
}

// dispatchTransaction handles a command in the TRANSACTION state.
func (s *session) dispatchTransaction(cmd command) reply {
	return s.dispatch(cmd, transactionCommands, authorizationCommands)
}

// dispatch runs cmd's handler from the state's table after checking its
// argument count; a verb only the other state knows is a state error.
func (s *session) dispatch(cmd command, here, other map[string]commandSpec) reply {
	c, ok := here[cmd.verb]
	switch {
	case ok && c.args != anyArgs && len(cmd.args) != c.args:
		return replySyntax
	case ok:
		return c.handle(s, cmd)
	}
	if _, ok := other[cmd.verb]; ok {
		return replyWrongState
	}
	return replyUnknownCommand
}

// handleCapa lists capabilities (RFC 2449 §5). Credentials capabilities
// appear only where they may be used, STLS only before TLS.
func (s *session) handleCapa(cmd command) reply {
	lines := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"}
	if s.state == stateAuthorization {
		if s.secure() {
			lines = append(lines, "USER")
			if mechs := s.srv.opts.Auth.Mechanisms(); len(mechs) > 0 {
				lines = append(lines, "SASL "+strings.Join(mechs, " "))
			}
		}
		if s.srv.opts.TLS != nil && !s.tlsOn {
			lines = append(lines, "STLS")
		}
	}
	lines = append(lines, "IMPLEMENTATION Posthouse")
	return reply{ok: true, text: "capability list follows", multi: true, lines: lines}
}

// handleStls starts TLS (RFC 2595 §4).
func (s *session) handleStls(cmd command) reply {
	switch {
	case s.tlsOn:
		return protoError("command not permitted when TLS active")
	case s.srv.opts.TLS == nil:
		return protoError("STLS is not available")
	}
	return reply{ok: true, text: "begin TLS negotiation", startTLS: true}
}

// handleUser records the name for PASS (RFC 1939 §7).
func (s *session) handleUser(cmd command) reply {
	if !s.secure() {
		return replyNotSecure
	}
	if len(cmd.args) != 1 {
		return replySyntax
	}
	s.pendingUser = cmd.args[0]
	return okReply("send PASS")
}

// handlePass checks USER's name with this password and opens the maildrop
// (RFC 1939 §7). The password is the whole rest of the line.
func (s *session) handlePass(cmd command) reply {
	if !s.secure() {
		return replyNotSecure
	}
	if s.pendingUser == "" {
		return protoError("send USER first")
	}
	if cmd.rest == "" {
		return replySyntax
	}
	name := s.pendingUser
	s.pendingUser = ""
	u, err := s.srv.opts.Auth.Authenticate(s.ctx, name, cmd.rest, s.remote)
	if err != nil {
		return s.authFailed("USER/PASS", name, err)
	}
	return s.login(u, "USER/PASS")
}

// handleAuth starts a SASL exchange (RFC 5034 §4). Without a mechanism it
// lists them, as RFC 1734 servers did: Outlook sends a bare AUTH to learn
// the mechanisms.
func (s *session) handleAuth(cmd command) reply {
	if !s.secure() {
		return replyNotSecure
	}
	mechs := s.srv.opts.Auth.Mechanisms()
	if len(cmd.args) == 0 {
		return reply{ok: true, text: "methods supported", multi: true, lines: mechs}
	}
	mech := strings.ToUpper(cmd.args[0])
	if !slices.Contains(mechs, mech) {
		return protoError("unsupported authentication mechanism")
	}
	var ir []byte
	if len(cmd.args) == 2 {
		// RFC 5034 §4: "=" is an empty initial response.
		ir = []byte{}
		if cmd.args[1] != "=" {
			var err error
			if ir, err = base64.StdEncoding.DecodeString(cmd.args[1]); err != nil {
				return protoError("invalid base64 in initial response")
			}
		}
	}
	s.pendingUser = ""
	s.saslUser = nil
	srv, err := s.srv.opts.Auth.NewSASLServer(s.ctx, mech, s.remote, func(u auth.User) {
		s.saslUser = &u
	})
	if err != nil {
		return s.translate("starting SASL "+mech, err)
	}
	s.sasl = srv
	return s.saslStep(mech, ir)
}

// handleSASLResponse takes one client line of an AUTH exchange.
func (s *session) handleSASLResponse(line []byte) reply {
	if string(line) == "*" {
		// RFC 5034 §4: the client cancels; the server rejects the AUTH.
		s.cancelSASL()
		return errReply("", "authentication cancelled")
	}
	resp, err := base64.StdEncoding.DecodeString(string(line))
	if err != nil {
		s.cancelSASL()
		return protoError("invalid base64 in SASL response")
	}
	if resp == nil {
		resp = []byte{}
	}
	return s.saslStep("", resp)
}

// saslStep feeds one response to the SASL server and returns the next
// challenge or the outcome.
func (s *session) saslStep(mech string, resp []byte) reply {
	challenge, done, err := s.sasl.Next(resp)
	if err != nil {
		s.cancelSASL()
		return s.authFailed("AUTH", "", err)
	}
	if !done {
		return reply{cont: true, text: base64.StdEncoding.EncodeToString(challenge)}
	}
	u := s.saslUser
	s.cancelSASL()
	if u == nil {
		s.log.Error("SASL exchange finished without a user")
		return replyTempFail
	}
	return s.login(*u, "AUTH")
}

// authFailed answers a refused login and closes the connection after too
// many of them.
func (s *session) authFailed(method, name string, err error) reply {
	var r reply
	switch {
	case errors.Is(err, auth.ErrBadCredentials), errors.Is(err, auth.ErrThrottled):
		r = s.translate(method, err)
	case errors.Is(err, sasl.ErrUnexpectedClientResponse):
		// A response after the exchange ended: the client's fault.
		// (auth's own SASL servers report malformed responses as
		// ErrBadCredentials.)
		r = s.translate(method, auth.ErrBadCredentials)
	default:
		return s.translate(method, err)
	}
	s.authFailures++
	s.log.Warn("authentication failed", "method", method, "user", name, "err", err, "count", s.authFailures)
	if s.authFailures >= s.srv.opts.MaxAuthFailures {
		r.quit = true
	}
	return r
}

// login locks and opens the user's maildrop and enters TRANSACTION (RFC
// 1939 §4). A maildrop locked by another session gets [IN-USE] and the
// client stays in AUTHORIZATION.
func (s *session) login(u auth.User, method string) reply {
	acct, err := s.srv.opts.Store.Open(s.ctx, u.Address)
	if err != nil {
		return s.translate("opening account", err)
	}
	unlock, err := acct.LockMaildrop(s.ctx)
	if err != nil {
		acct.Close()
		s.log.Info("maildrop lock refused", "user", u.Address, "err", err)
		return s.translate("locking maildrop", err)
	}
	drop, err := openMaildrop(s.ctx, acct)
	if err != nil {
		unlock()
		acct.Close()
		return s.translate("opening maildrop", err)
	}
	s.acct, s.unlock, s.drop = acct, unlock, drop
	s.user = u.Address
	s.state = stateTransaction
	s.log = s.log.With("user", u.Address)
	s.log.Info("login", "method", method, "messages", drop.count, "size", drop.size)
	return okReply("maildrop has " + strconv.Itoa(drop.count) + " messages (" + strconv.FormatInt(drop.size, 10) + " octets)")
}

// handleStat (RFC 1939 §5): count and size of messages not marked deleted.
func (s *session) handleStat(cmd command) reply {
	return okReply(strconv.Itoa(s.drop.count) + " " + strconv.FormatInt(s.drop.size, 10))
}

// handleList (RFC 1939 §5) gives sizes as stored, which are the octets
// RETR sends before byte-stuffing.
func (s *session) handleList(cmd command) reply {
	d := s.drop
	return d.listing(cmd, strconv.Itoa(d.count)+" messages ("+strconv.FormatInt(d.size, 10)+" octets)",
		func(m *message) string { return strconv.FormatInt(m.size, 10) })
}

// handleUIDL (RFC 1939 §7) gives each message's lasting identity.
func (s *session) handleUIDL(cmd command) reply {
	return s.drop.listing(cmd, "unique-id listing follows", s.drop.uidl)
}

// handleRetr (RFC 1939 §5) streams the stored message. It is recorded as
// \Seen once fully written. The file is read with no store lock held, so a
// slow client delays nobody else.
func (s *session) handleRetr(cmd command) reply {
	m, r, ok := s.drop.lookup(cmd.args[0])
	if !ok {
		return r
	}
	rc, size, err := s.acct.OpenMessage(s.ctx, s.drop.mailboxID, m.uid)
	if err != nil {
		return s.translate("opening message", err)
	}
	if size != m.size {
		s.log.Warn("message size differs from index", "uid", m.uid, "size", size, "indexed", m.size)
	}
	return reply{
		ok:    true,
		text:  strconv.FormatInt(m.size, 10) + " octets",
		multi: true,
		body:  rc,
		sent: func() {
			s.retrieved++
			if !m.seen {
				m.seen = true
				m.setSeen = true
			}
		},
	}
}

// handleTop (RFC 1939 §7) sends the header and the first n body lines. It
// does not mark the message seen.
func (s *session) handleTop(cmd command) reply {
	m, r, ok := s.drop.lookup(cmd.args[0])
	if !ok {
		return r
	}
	n, ok := parseLineCount(cmd.args[1])
	if !ok {
		return replySyntax
	}
	rc, _, err := s.acct.OpenMessage(s.ctx, s.drop.mailboxID, m.uid)
	if err != nil {
		return s.translate("opening message", err)
	}
	body := struct {
		io.Reader
		io.Closer
	}{newTopReader(rc, n), rc}
	return reply{ok: true, text: "top of message follows", multi: true, body: body}
}

// handleDele marks a message for deletion at QUIT (RFC 1939 §5).
func (s *session) handleDele(cmd command) reply {
	m, r, ok := s.drop.lookup(cmd.args[0])
	if !ok {
		return r
	}
	s.drop.markDeleted(m)
	return okReply("message " + cmd.args[0] + " deleted")
}

// handleRset unmarks all deletions (RFC 1939 §5).
func (s *session) handleRset(cmd command) reply {
	s.drop.reset()
	return okReply("maildrop has " + strconv.Itoa(s.drop.count) + " messages (" + strconv.FormatInt(s.drop.size, 10) + " octets)")
}

// handleQuit enters the UPDATE state (RFC 1939 §6): retrieved messages
// become \Seen, messages marked by DELE are expunged, and the lock is
// released before the reply.
func (s *session) handleQuit(cmd command) reply {
	s.state = stateUpdate
	d := s.drop
	if err := d.markSeen(s.ctx, s.acct, true); err != nil {
		s.log.Error("marking retrieved messages seen failed", "err", err)
	}
	n, err := d.expungeDeleted(s.ctx, s.acct)
	s.expunged = n
	// Unlock before the reply goes out: a client that logs in again as
	// soon as it reads +OK must not get [IN-USE].
	left := d.count
	s.releaseMaildrop()
	if err != nil {
		s.log.Error("applying deletions failed", "err", err, "count", d.deletedCount())
		return reply{code: "SYS/TEMP", text: "some deleted messages not removed", quit: true}
	}
	if n > 0 {
		s.log.Info("deletions applied", "count", n)
	}
	return reply{ok: true, text: "Posthouse POP3 server signing off (" + strconv.Itoa(left) + " messages left)", quit: true}
}
