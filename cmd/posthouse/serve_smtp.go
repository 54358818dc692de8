package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/smtpd"
)

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
// max_connections, max_connections_per_ip and max_connection_rate count SMTP
// connections on all three ports together, and a full server frees an idle
// slot of the biggest holder for a newcomer on any of them.
func startSMTP(ctx context.Context, a *app) (func(context.Context) error, error) {
	spool := filepath.Join(a.cfg.DataDir, "spool", "smtpd")
	if err := os.MkdirAll(spool, privateDirMode); err != nil {
		return nil, fmt.Errorf("smtpd spool: %w", err)
	}
	removeSpoolLeftovers(spool, a.log)
	conns := limit.New(limit.Options{
		PerIP: a.cfg.Limits.MaxConnectionsPerIP,
		Total: a.cfg.Limits.MaxConnections,
		Rate:  a.cfg.Limits.MaxConnectionRate,
	})
	// The port-25 gate ([inbound]: DNS lists, greylisting, sender rate)
	// asks the configured resolver; without one, it cannot check lists.
	resolver, err := a.dns.r, a.dns.err
	if err != nil {
		a.log.Warn("no DNS resolver: DNS block lists are not checked", "proto", "smtp", "err", err)
	}
	g, err := openGate(ctx, a, resolver)
	if err != nil {
		return nil, fmt.Errorf("inbound checks: %w", err)
	}

	names := make([]string, len(smtpListeners))
	modes := map[string]smtpd.Mode{}
	for i, l := range smtpListeners {
		names[i], modes[l.name] = l.name, l.mode
	}
	shutdown, err := serveEach(ctx, a, names, smtpd.ErrServerClosed, func(name string) (mailServer, error) {
		opts := smtpOptions(a, modes[name], spool, conns)
		if g != nil && modes[name] == smtpd.ModeMTA {
			opts.Gate = smtpGate{g}
		}
		return smtpd.New(opts)
	})
	if g != nil {
		if err != nil || shutdown == nil {
			closeGateAfter(a, g, shutdown)(ctx)
			return nil, err
		}
		shutdown = closeGateAfter(a, g, shutdown)
	}
	return shutdown, err
}

// smtpOptions are one SMTP listener's options.
func smtpOptions(a *app, mode smtpd.Mode, spool string, conns *limit.Conns) smtpd.Options {
	opts := smtpd.Options{
		Logger:             a.log,
		Hostname:           a.cfg.Hostname,
		Mode:               mode,
		TLS:                a.tls,
		Directory:          a.authFor(smtpListenerName(mode)),
		Store:              smtpd.MailStore(a.store),
		Delivery:           a.delivery,
		SpoolDir:           spool,
		MaxMessageBytes:    int64(a.cfg.Limits.MaxMessageSize),
		MaxRecipients:      a.cfg.Limits.MaxRecipients,
		Conns:              conns,
		MaxJunkCommands:    a.cfg.Limits.MaxJunkCommands,
		MaxSessionDuration: a.cfg.Limits.MaxSessionDuration.Duration,
		Observe:            smtpObserver(a.metrics),
	}
	if a.space != nil {
		opts.Space = a.space
	}
	if a.srs != nil {
		opts.SRS = a.srs
	}
	if a.queue != nil {
		// Not a typed nil in the interface: without a queue, foreign
		// recipients are refused with 451.
		opts.Queue = a.queue
	}
	return opts
}

// spoolLeftoverAge: smtpd unlinks each spool file right after creating it
// (before any byte of the message is written), so a named one is only ever
// left by a crash in between; the age spares one being created right now
// by another process on the same data_dir.
const spoolLeftoverAge = time.Minute

// removeSpoolLeftovers removes the files a crash left in smtpd's spool
// directory (it holds nothing else), and logs each.
func removeSpoolLeftovers(dir string, log *slog.Logger) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || time.Since(info.ModTime()) < spoolLeftoverAge {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			log.Error("remove spool file left by a crash", "proto", "smtp", "path", e.Name(), "err", err)
			continue
		}
		log.Warn("removed spool file left by a crash", "proto", "smtp", "path", e.Name(), "size", info.Size())
	}
}
