package main

import (
	"context"

	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/pop3d"
)

// startPOP3 opens the POP3 listeners: "pop3" (110, STLS) and "pop3s" (995,
// implicit TLS), one pop3d.Server each. They share one connection counter,
// so [limits] max_connections and max_connections_per_ip count POP3
// connections on both ports together.
func startPOP3(ctx context.Context, a *app) (func(context.Context) error, error) {
	conns := limit.NewConns(a.cfg.Limits.MaxConnectionsPerIP, a.cfg.Limits.MaxConnections)
	return serveEach(ctx, a, []string{"pop3", "pop3s"}, pop3d.ErrServerClosed, func(name string) (mailServer, error) {
		return pop3d.New(pop3Options(a, name, conns))
	})
}

// pop3Options are one POP3 listener's options. [limits] login_timeout is
// also IMAP's: a client that has not logged in holds a slot no longer on
// one protocol than on the other.
func pop3Options(a *app, name string, conns *limit.Conns) pop3d.Options {
	return pop3d.Options{
		Logger:           a.log,
		Hostname:         a.cfg.Hostname,
		TLS:              a.tls,
		ImplicitTLS:      name == "pop3s",
		LoopbackIsSecure: a.cfg.POP3.LoopbackIsSecure,
		Store:            pop3d.MailStore(a.store),
		Auth:             a.authFor(name),
		Conns:            conns,
		LoginTimeout:     a.cfg.Limits.LoginTimeout.Duration,
	}
}
