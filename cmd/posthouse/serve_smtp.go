package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/smtpd"
)

func init() { registerService("smtp", 20, startSMTP) }

// smtpListeners maps the [listen] entries to smtpd modes.
var smtpListeners = []struct {
	name string
	mode smtpd.Mode
}{
	{"smtp", smtpd.ModeMTA},
	{"submission", smtpd.ModeSubmission},
	{"submissions", smtpd.ModeSubmissions},
}

// startSMTP opens the SMTP listeners (25, 587, 465 by default), one
// smtpd.Server each. They share one connection counter, so [limits]
// max_connections and max_connections_per_ip count SMTP connections on all
// three ports together.
func startSMTP(ctx context.Context, a *app) (func(context.Context) error, error) {
	spool := filepath.Join(a.cfg.DataDir, "spool", "smtpd")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, fmt.Errorf("smtpd spool: %w", err)
	}
	conns := limit.NewConns(a.cfg.Limits.MaxConnectionsPerIP, a.cfg.Limits.MaxConnections)
	// DKIM verification of inbound mail goes through the configured
	// resolver; without one, mail is still accepted, just not verified.
	var txt smtpd.TXTResolver
	if r, err := dns.New(dns.Options{Server: a.cfg.DNS.Resolver}); err != nil {
		a.log.Warn("no DNS resolver: inbound DKIM signatures will not be verified", "proto", "smtp", "err", err)
	} else {
		txt = r
	}

	names := make([]string, len(smtpListeners))
	modes := map[string]smtpd.Mode{}
	for i, l := range smtpListeners {
		names[i], modes[l.name] = l.name, l.mode
	}
	return serveEach(ctx, a, names, nil, func(name string) (mailServer, error) {
		opts := smtpd.Options{
			Logger:              a.log,
			Hostname:            a.cfg.Hostname,
			Mode:                modes[name],
			TLS:                 a.tls,
			Directory:           a.auth,
			Store:               a.store,
			Resolver:            txt,
			SpoolDir:            spool,
			MaxMessageBytes:     int64(a.cfg.Limits.MaxMessageSize),
			MaxRecipients:       a.cfg.Limits.MaxRecipients,
			Conns:               conns,
			MaxConnections:      a.cfg.Limits.MaxConnections,
			MaxConnectionsPerIP: a.cfg.Limits.MaxConnectionsPerIP,
		}
		if a.queue != nil {
			// Not a typed nil in the interface: without the queue
			// service, foreign recipients are refused with 451.
			opts.Queue = a.queue
		}
		return smtpd.New(opts)
	})
}
