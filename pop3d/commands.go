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

// transactionVerbs are the commands of the TRANSACTION state; in
// AUTHORIZATION they are a state error rather than unknown.
var transactionVerbs = []string{"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL"}

// authorizationVerbs likewise for the AUTHORIZATION state.
var authorizationVerbs = []string{"USER", "PASS", "AUTH", "STLS", "APOP"}

// dispatchAuthorization handles a command in the AUTHORIZATION state (RFC
// 1939 §4).
func (s *session) dispatchAuthorization(cmd command) reply {
	switch cmd.verb {
	case "CAPA":
		return s.handleCapa(cmd)
	case "STLS":
		return s.handleStls(cmd)
	case "USER":
		return s.handleUser(cmd)
	case "PASS":
		return s.handlePass(cmd)
	case "AUTH":
		return s.handleAuth(cmd)
	case "APOP":
		return protoError("APOP is not supported; use USER/PASS or AUTH")
	case "QUIT":
		return reply{ok: true, text: "Posthouse POP3 server signing off", quit: true}
	}
	if slices.Contains(transactionVerbs, cmd.verb) {
		return replyWrongState
	}
	return replyUnknownCommand
}

// dispatchTransaction handles a command in the TRANSACTION state (RFC 1939
// §5).
func (s *session) dispatchTransaction(cmd command) reply {
	switch cmd.verb {
	case "STAT":
		return s.handleStat(cmd)
	case "LIST":
		return s.handleList(cmd)
	case "UIDL":
		return s.handleUIDL(cmd)
	case "RETR":
		return s.handleRetr(cmd)
	case "TOP":
		return s.handleTop(cmd)
	case "DELE":
		return s.handleDele(cmd)
	case "NOOP":
		if len(cmd.args) != 0 {
			return replySyntax
		}
		return okReply("")
	case "RSET":
		return s.handleRset(cmd)
	case "QUIT":
		return s.handleQuit(cmd)
	case "CAPA":
		return s.handleCapa(cmd)
	}
	if slices.Contains(authorizationVerbs, cmd.verb) {
		return replyWrongState
	}
	return replyUnknownCommand
}

// handleCapa lists capabilities (RFC 2449 §5). Credentials capabilities
// appear only where they may be used, STLS only before TLS.
func (s *session) handleCapa(cmd command) reply {
	if len(cmd.args) != 0 {
		return replySyntax
	}
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
	case len(cmd.args) != 0:
		return replySyntax
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
	if len(cmd.args) != 0 {
		return replySyntax
	}
	return okReply(strconv.Itoa(s.drop.count) + " " + strconv.FormatInt(s.drop.size, 10))
}

// handleList (RFC 1939 §5) gives sizes as stored, which are the octets
// RETR sends before byte-stuffing.
func (s *session) handleList(cmd command) reply {
	d := s.drop
	switch len(cmd.args) {
	case 0:
		lines := make([]string, 0, d.count)
		for i := range d.msgs {
			if !d.msgs[i].deleted {
				lines = append(lines, strconv.Itoa(i+1)+" "+strconv.FormatInt(d.msgs[i].size, 10))
			}
		}
		return reply{ok: true, text: strconv.Itoa(d.count) + " messages (" + strconv.FormatInt(d.size, 10) + " octets)", multi: true, lines: lines}
	case 1:
		m, r, ok := d.lookup(cmd.args[0])
		if !ok {
			return r
		}
		return okReply(cmd.args[0] + " " + strconv.FormatInt(m.size, 10))
	}
	return replySyntax
}

// handleUIDL (RFC 1939 §7) gives each message's lasting identity.
func (s *session) handleUIDL(cmd command) reply {
	d := s.drop
	switch len(cmd.args) {
	case 0:
		lines := make([]string, 0, d.count)
		for i := range d.msgs {
			if !d.msgs[i].deleted {
				lines = append(lines, strconv.Itoa(i+1)+" "+d.uidl(&d.msgs[i]))
			}
		}
		return reply{ok: true, text: "unique-id listing follows", multi: true, lines: lines}
	case 1:
		m, r, ok := d.lookup(cmd.args[0])
		if !ok {
			return r
		}
		return okReply(cmd.args[0] + " " + d.uidl(m))
	}
	return replySyntax
}

// handleRetr (RFC 1939 §5) streams the stored message. It is recorded as
// \Seen once fully written. The file is read with no store lock held, so a
// slow client delays nobody else.
func (s *session) handleRetr(cmd command) reply {
	if len(cmd.args) != 1 {
		return replySyntax
	}
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
	if len(cmd.args) != 2 {
		return replySyntax
	}
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
	if len(cmd.args) != 1 {
		return replySyntax
	}
	m, r, ok := s.drop.lookup(cmd.args[0])
	if !ok {
		return r
	}
	s.drop.markDeleted(m)
	return okReply("message " + cmd.args[0] + " deleted")
}

// handleRset unmarks all deletions (RFC 1939 §5).
func (s *session) handleRset(cmd command) reply {
	if len(cmd.args) != 0 {
		return replySyntax
	}
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
