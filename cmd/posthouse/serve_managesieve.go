package main

import (
	"context"

	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/managesieve"
	"github.com/posthouse/posthouse/sieve"
)

// startManageSieve opens the "managesieve" listener (4190, STARTTLS; RFC
// 5804 has no implicit-TLS port). It has its own connection counter, as
// each protocol has.
func startManageSieve(ctx context.Context, a *app) (func(context.Context) error, error) {
	conns := limit.NewConns(a.cfg.Limits.MaxConnectionsPerIP, a.cfg.Limits.MaxConnections)
	return serveEach(ctx, a, []string{"managesieve"}, managesieve.ErrServerClosed, func(string) (mailServer, error) {
		return managesieve.New(manageSieveOptions(a, conns))
	})
}

// manageSieveOptions: AUTHENTICATE on loopback without TLS follows [imap]
// loopback_is_secure (a webmail's managesieve plugin sits beside its IMAP
// client); login_timeout as for IMAP and POP3.
func manageSieveOptions(a *app, conns *limit.Conns) managesieve.Options {
	return managesieve.Options{
		Logger:           a.log,
		Hostname:         a.cfg.Hostname,
		TLS:              a.tls,
		LoopbackIsSecure: a.cfg.IMAP.LoopbackIsSecure,
		Store:            a.sieve,
		Auth:             a.authFor("managesieve"),
		// The options openSieveStore compiles with (the defaults), so
		// that SIEVE and MAXREDIRECTS say what PUTSCRIPT accepts.
		Sieve:        sieve.Options{},
		Conns:        conns,
		LoginTimeout: a.cfg.Limits.LoginTimeout.Duration,
	}
}
