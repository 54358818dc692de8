package managesieve

import (
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
)

// handler answers one command; cmd has the arguments its table entry asks
// for.
type handler func(s *session, cmd command) reply

// commandSpec is a verb's entry in a state's command table. args gives
// each argument's kind, 's' a string (quoted or literal) and 'n' a number;
// the last opt of them may be left out.
type commandSpec struct {
	args   string
	opt    int
	handle handler
}

// nonAuthCommands are the commands of the non-authenticated state,
// authCommands those of the authenticated state (RFC 5804 §2). A verb of
// the other state only is a state error rather than unknown.
var (
	nonAuthCommands = map[string]commandSpec{
		"CAPABILITY":   {"", 0, (*session).handleCapability},
		"LOGOUT":       {"", 0, (*session).handleLogout},
		"NOOP":         {"s", 1, (*session).handleNoop},
		"STARTTLS":     {"", 0, (*session).handleStartTLS},
		"AUTHENTICATE": {"ss", 1, (*session).handleAuthenticate},
	}
	authCommands = map[string]commandSpec{
		"CAPABILITY":     {"", 0, (*session).handleCapability},
		"LOGOUT":         {"", 0, (*session).handleLogout},
		"NOOP":           {"s", 1, (*session).handleNoop},
		"HAVESPACE":      {"sn", 0, (*session).handleHaveSpace},
		"PUTSCRIPT":      {"ss", 0, (*session).handlePutScript},
		"CHECKSCRIPT":    {"s", 0, (*session).handleCheckScript},
		"LISTSCRIPTS":    {"", 0, (*session).handleListScripts},
		"SETACTIVE":      {"s", 0, (*session).handleSetActive},
		"GETSCRIPT":      {"s", 0, (*session).handleGetScript},
		"DELETESCRIPT":   {"s", 0, (*session).handleDeleteScript},
		"RENAMESCRIPT":   {"ss", 0, (*session).handleRenameScript},
		"UNAUTHENTICATE": {"", 0, (*session).handleUnauthenticate},
	}
)

// dispatch runs cmd's handler from the state's table after checking its
// arguments.
func (s *session) dispatch(cmd command) reply {
	here, other, wrong := nonAuthCommands, authCommands, replyNeedAuth
	if s.state == stateAuth {
		here, other, wrong = authCommands, nonAuthCommands, replyAuthed
	}
	c, ok := here[cmd.name]
	if !ok {
		if _, ok := other[cmd.name]; ok {
			return wrong
		}
		return replyUnknownCommand
	}
	if len(cmd.args) > len(c.args) || len(cmd.args) < len(c.args)-c.opt {
		return replySyntax
	}
	for i, a := range cmd.args {
		switch c.args[i] {
		case 's':
			if a.kind != argString {
				return replySyntax
			}
		case 'n':
			if _, ok := parseNumber(a.val); a.kind != argAtom || !ok {
				return replySyntax
			}
		}
	}
	return c.handle(s, cmd)
}

// capabilities is the capability response without its OK text (RFC 5804
// §1.7). SASL lists the mechanisms only where AUTHENTICATE may be used
// (before authentication, over TLS or on a trusted loopback), and is ""
// otherwise; STARTTLS only before TLS. NOTIFY is absent: package sieve has
// no enotify.
func (s *session) capabilities() reply {
	var b []byte
	line := func(name string, value ...string) {
		b = appendString(b, name)
		for _, v := range value {
			b = append(b, ' ')
			b = appendString(b, v)
		}
		b = append(b, "\r\n"...)
	}
	line("IMPLEMENTATION", "Posthouse")
	mechs := ""
	if s.state == stateNonAuth && s.secure() {
		mechs = strings.Join(s.srv.opts.Auth.Mechanisms(), " ")
	}
	line("SASL", mechs)
	line("SIEVE", s.srv.sieveCap)
	if s.srv.opts.TLS != nil && !s.tlsOn && s.state == stateNonAuth {
		line("STARTTLS")
	}
	line("MAXREDIRECTS", strconv.Itoa(s.srv.maxRedirects))
	if s.state == stateAuth {
		line("OWNER", s.user)
	}
	line("VERSION", "1.0")
	line("UNAUTHENTICATE")
	return reply{data: b}
}

// handleCapability (RFC 5804 §2.4).
func (s *session) handleCapability(cmd command) reply {
	r := s.capabilities()
	r.text = "capability completed"
	return r
}

// handleLogout (RFC 5804 §2.3): OK, then the server closes.
func (s *session) handleLogout(cmd command) reply {
	return reply{text: "logout completed", quit: true}
}

// handleNoop (RFC 5804 §2.13) echoes the client's tag in a TAG code.
func (s *session) handleNoop(cmd command) reply {
	r := okReply("done")
	if len(cmd.args) == 1 {
		r.code = codeString("TAG", string(cmd.args[0].val))
	}
	return r
}

// handleStartTLS (RFC 5804 §2.2).
func (s *session) handleStartTLS(cmd command) reply {
	switch {
	case s.tlsOn:
		return protoError("TLS is already active")
	case s.srv.opts.TLS == nil:
		return protoError("STARTTLS is not available")
	}
	return reply{text: "begin TLS negotiation", startTLS: true}
}

// handleAuthenticate starts a SASL exchange (RFC 5804 §2.1) through auth,
// the same user database and throttling IMAP and POP3 use.
func (s *session) handleAuthenticate(cmd command) reply {
	if !s.secure() {
		return replyNotSecure
	}
	mech := strings.ToUpper(string(cmd.args[0].val))
	if !slices.Contains(s.srv.opts.Auth.Mechanisms(), mech) {
		return protoError("unsupported authentication mechanism")
	}
	var ir []byte
	if len(cmd.args) == 2 {
		var err error
		if ir, err = base64.StdEncoding.DecodeString(string(cmd.args[1].val)); err != nil {
			return protoError("invalid base64 in initial response")
		}
		if ir == nil {
			ir = []byte{} // an empty initial response, not none
		}
	}
	srv, err := s.srv.opts.Auth.NewSASLServer(s.ctx, mech, s.remote, func(u auth.User) {
		s.saslUser = &u
	})
	if err != nil {
		return s.translate("starting SASL "+mech, err)
	}
	s.sasl, s.saslMech, s.saslUser = srv, mech, nil
	return s.saslStep(ir)
}

// handleSASLResponse takes one client string of an AUTHENTICATE exchange;
// "*" cancels it (RFC 5804 §2.1: the server answers NO).
func (s *session) handleSASLResponse(val []byte, abort bool) reply {
	if abort {
		s.cancelSASL()
		return noReply("", "authentication cancelled")
	}
	resp, err := base64.StdEncoding.DecodeString(string(val))
	if err != nil {
		s.cancelSASL()
		return protoError("invalid base64 in SASL response")
	}
	if resp == nil {
		resp = []byte{}
	}
	return s.saslStep(resp)
}

// saslStep feeds one response to the SASL server and returns the next
// challenge or the outcome.
func (s *session) saslStep(resp []byte) reply {
	challenge, done, err := s.sasl.Next(resp)
	if err != nil {
		mech := s.saslMech
		s.cancelSASL()
		return s.authFailed(mech, err)
	}
	if !done {
		b := appendString(nil, base64.StdEncoding.EncodeToString(challenge))
		return reply{cont: true, data: append(b, "\r\n"...)}
	}
	u := s.saslUser
	mech := s.saslMech
	s.cancelSASL()
	if u == nil {
		s.log.Error("SASL exchange finished without a user")
		return replyTempFail
	}
	return s.login(*u, mech)
}

// authFailed answers a refused login and closes the connection after too
// many of them.
func (s *session) authFailed(mech string, err error) reply {
	var r reply
	switch {
	case errors.Is(err, auth.ErrBadCredentials), errors.Is(err, auth.ErrThrottled):
		r = s.translate(mech, err)
	case errors.Is(err, sasl.ErrUnexpectedClientResponse):
		r = s.translate(mech, auth.ErrBadCredentials)
	default:
		return s.translate(mech, err)
	}
	s.authFailures++
	s.log.Warn("authentication failed", "method", mech, "err", err, "count", s.authFailures)
	if s.authFailures >= s.srv.opts.MaxAuthFailures {
		r.status, r.quit = statusBYE, true
	}
	return r
}

// login enters the authenticated state as u.
func (s *session) login(u auth.User, mech string) reply {
	s.user = u.Address
	s.state = stateAuth
	s.setLimits()
	s.log = s.log.With("user", u.Address)
	s.log.Info("login", "method", mech)
	return okReply("authenticated")
}

// handleUnauthenticate returns to the non-authenticated state (RFC 5804
// §2.14.1); TLS stays.
func (s *session) handleUnauthenticate(cmd command) reply {
	s.log.Info("unauthenticate")
	s.user = ""
	s.state = stateNonAuth
	s.setLimits()
	s.log = s.srv.log.With("conn", s.id, "remote", s.remote.String())
	return okReply("unauthenticated")
}

// handleHaveSpace (RFC 5804 §2.5).
func (s *session) handleHaveSpace(cmd command) reply {
	size, _ := parseNumber(cmd.args[1].val)
	if err := s.srv.opts.Store.HaveSpace(s.ctx, s.user, string(cmd.args[0].val), int(min(size, 1<<31))); err != nil {
		return s.translate("HAVESPACE", err)
	}
	return okReply("putscript would succeed")
}

// handlePutScript (RFC 5804 §2.6) checks, then stores; a script that does
// not compile gets NO with its line.
func (s *session) handlePutScript(cmd command) reply {
	name, src := string(cmd.args[0].val), cmd.args[1].val
	if err := s.srv.opts.Store.Put(s.ctx, s.user, name, src); err != nil {
		return s.translate("PUTSCRIPT", err)
	}
	s.stored++
	s.log.Info("script stored", "script", name, "size", len(src))
	return okReply("script stored")
}

// handleCheckScript (RFC 5804 §2.12) compiles without storing.
func (s *session) handleCheckScript(cmd command) reply {
	if err := s.srv.opts.Store.Check(cmd.args[0].val); err != nil {
		return s.translate("CHECKSCRIPT", err)
	}
	return okReply("script is valid")
}

// handleListScripts (RFC 5804 §2.7): one line per script, the active one
// marked ACTIVE.
func (s *session) handleListScripts(cmd command) reply {
	list, err := s.srv.opts.Store.List(s.ctx, s.user)
	if err != nil {
		return s.translate("LISTSCRIPTS", err)
	}
	var b []byte
	for _, sc := range list {
		b = appendString(b, sc.Name)
		if sc.Active {
			b = append(b, " ACTIVE"...)
		}
		b = append(b, "\r\n"...)
	}
	return reply{data: b, text: "listscripts completed"}
}

// handleSetActive (RFC 5804 §2.8); "" leaves no script active.
func (s *session) handleSetActive(cmd command) reply {
	name := string(cmd.args[0].val)
	if err := s.srv.opts.Store.SetActive(s.ctx, s.user, name); err != nil {
		return s.translate("SETACTIVE", err)
	}
	s.log.Info("active script set", "script", name)
	return okReply("active script set")
}

// handleGetScript (RFC 5804 §2.9) sends the script as a literal.
func (s *session) handleGetScript(cmd command) reply {
	src, err := s.srv.opts.Store.Get(s.ctx, s.user, string(cmd.args[0].val))
	if err != nil {
		return s.translate("GETSCRIPT", err)
	}
	b := appendLiteral(make([]byte, 0, len(src)+16), src)
	return reply{data: append(b, "\r\n"...), text: "getscript completed"}
}

// handleDeleteScript (RFC 5804 §2.10): the active script is refused with
// NO (ACTIVE).
func (s *session) handleDeleteScript(cmd command) reply {
	name := string(cmd.args[0].val)
	if err := s.srv.opts.Store.Delete(s.ctx, s.user, name); err != nil {
		return s.translate("DELETESCRIPT", err)
	}
	s.log.Info("script deleted", "script", name)
	return okReply("script deleted")
}

// handleRenameScript (RFC 5804 §2.11.1); the active script stays active.
func (s *session) handleRenameScript(cmd command) reply {
	oldName, newName := string(cmd.args[0].val), string(cmd.args[1].val)
	if err := s.srv.opts.Store.Rename(s.ctx, s.user, oldName, newName); err != nil {
		return s.translate("RENAMESCRIPT", err)
	}
	s.log.Info("script renamed", "script", oldName, "to", newName)
	return okReply("script renamed")
}
