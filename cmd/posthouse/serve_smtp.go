package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/smtpd"
	"github.com/posthouse/posthouse/smtpd/resolve"
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
	if r, err := resolve.New(resolve.Options{Server: a.cfg.DNS.Resolver}); err != nil {
		a.log.Warn("no DNS resolver: inbound DKIM signatures will not be verified", "proto", "smtp", "err", err)
	} else {
		txt = r
	}

	var (
		servers []*smtpd.Server
		wg      sync.WaitGroup
	)
	shutdown := func(ctx context.Context) error {
		errs := make([]error, len(servers))
		var swg sync.WaitGroup
		for i, srv := range servers {
			swg.Add(1)
			go func() {
				defer swg.Done()
				errs[i] = srv.Shutdown(ctx)
			}()
		}
		swg.Wait()
		wg.Wait()
		return errors.Join(errs...)
	}

	for _, l := range smtpListeners {
		ln, err := a.listen(l.name)
		if err != nil {
			shutdown(context.Background())
			return nil, err
		}
		if ln == nil {
			continue
		}
		opts := smtpd.Options{
			Logger:              a.log,
			Hostname:            a.cfg.Hostname,
			Mode:                l.mode,
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
		srv, err := smtpd.New(opts)
		if err != nil {
			ln.Close()
			shutdown(context.Background())
			return nil, err
		}
		servers = append(servers, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ctx, ln); err != nil {
				a.log.Error("smtp listener stopped", "proto", l.name, "err", err)
			}
		}()
	}
	if len(servers) == 0 {
		return nil, nil
	}
	return shutdown, nil
}
