package main

import (
	"context"

	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/imapd"
)

// startIMAP opens the IMAP listeners: "imap" (143, STARTTLS) and "imaps"
// (993, implicit TLS), one imapd.Server each. They share one connection
// counter, so [limits] max_connections and max_connections_per_ip count IMAP
// connections on both ports together. APPEND accepts messages up to
// [limits] max_message_size, the same limit SMTP applies.
func startIMAP(ctx context.Context, a *app) (func(context.Context) error, error) {
	conns := limit.NewConns(a.cfg.Limits.MaxConnectionsPerIP, a.cfg.Limits.MaxConnections)
	return serveEach(ctx, a, []string{"imap", "imaps"}, imapd.ErrServerClosed, func(name string) (mailServer, error) {
		return imapd.New(imapOptions(a, name, conns))
	})
}

// imapOptions are one IMAP listener's options; login_timeout as for POP3.
func imapOptions(a *app, name string, conns *limit.Conns) imapd.Options {
	return imapd.Options{
		Logger:           a.log,
		TLS:              a.tls,
		ImplicitTLS:      name == "imaps",
		LoopbackIsSecure: a.cfg.IMAP.LoopbackIsSecure,
		MaxAppendSize:    int64(a.cfg.Limits.MaxMessageSize),
		Hostname:         a.cfg.Hostname,
		Conns:            conns,
		Store:            a.imapStore(),
		Auth:             a.authFor(name),
		LoginTimeout:     a.cfg.Limits.LoginTimeout.Duration,
		TrustedNetworks:  a.cfg.Auth.Networks(),
		Space:            a.space, // nil-safe: a nil Monitor is never Low
		CommandDone:      a.metrics.IMAPCommand,
	}
}
