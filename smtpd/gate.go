package smtpd

import (
	"context"
	"log/slog"
	"net/netip"
)

// Gate admits or refuses mail on port 25 before the message is sent: DNS
// block lists, greylisting, a sender's message rate. Package gate
// implements it (cmd/posthouse adapts it); smtpd knows nothing of how it
// decides. It is consulted on ModeMTA only (Options.Gate is ignored on
// submission), and never for an authenticated session.
type Gate interface {
	// Connect is called when a connection is accepted, before the
	// greeting, so that slow checks (DNS) run while the client sends EHLO
	// and MAIL. ctx ends with the connection; log is the connection's
	// logger (conn, remote). A nil GateConn checks nothing.
	//
	// Connect gives no reply of its own: a refusal waits for RCPT, where
	// the client is known to read it as a reply about its mail (some
	// treat a 5xx greeting as a reason to retry elsewhere at once), and
	// where the sender and recipient can be logged with it.
	Connect(ctx context.Context, remote netip.Addr, log *slog.Logger) GateConn
}

// GateConn is one connection's checks. A non-nil error from Mail or Rcpt is
// the client's reply: an error with an SMTPReply method (like delivery's
// rejects) gives its code and text; any other is logged and answered
// 451 4.3.0.
type GateConn interface {
	// Mail is asked once MAIL is otherwise acceptable; from is "" for the
	// null reverse-path.
	Mail(ctx context.Context, from string) error
	// Rcpt is asked for a recipient smtpd would otherwise accept (it
	// resolves, and has room), so refusals for unknown users and relaying
	// come first and never reach the gate.
	Rcpt(ctx context.Context, from, rcpt string) error
}

// gateConnect starts the gate's checks for a new connection.
func (s *Server) gateConnect(ctx context.Context, c *conn) {
	if s.opts.Gate == nil || s.opts.Mode != ModeMTA {
		return
	}
	c.gate = s.opts.Gate.Connect(ctx, c.remote, c.log)
}

// gateMail asks the gate about MAIL FROM.
func (s *session) gateMail(from string) error {
	g := s.conn.gate
	if g == nil {
		return nil
	}
	if _, authed := s.authenticated(); authed {
		return nil
	}
	if err := g.Mail(s.ctx, from); err != nil {
		return s.fail("gate at MAIL", err)
	}
	return nil
}

// gateRcpt asks the gate about a recipient.
func (s *session) gateRcpt(rcpt string) error {
	g := s.conn.gate
	if g == nil {
		return nil
	}
	if _, authed := s.authenticated(); authed {
		return nil
	}
	if err := g.Rcpt(s.ctx, s.env.from, rcpt); err != nil {
		return s.fail("gate at RCPT", err)
	}
	return nil
}
