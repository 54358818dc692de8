package main

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/gate"
	"github.com/posthouse/posthouse/smtpd"
)

// greylistFile is the greylisting database in data_dir (package gate's
// doc says why it is a file of its own).
const greylistFile = "greylist.sqlite"

// openGate builds the port-25 admission checks from [inbound]: DNS lists,
// greylisting, the sender rate; nil when none is configured. Clients in
// [auth] trusted_networks are exempt. resolver is nil when none could be
// set up, which only list zones need.
func openGate(ctx context.Context, a *app, resolver *dns.Resolver) (*gate.Gate, error) {
	in := a.cfg.Inbound
	if len(in.DNSBL) == 0 && len(in.DNSWL) == 0 && !in.Greylist && in.MaxMessagesPerSender == 0 {
		return nil, nil
	}
	o := gate.Options{
		Logger:               a.log.With("proto", "smtp"),
		DNSBL:                in.DNSBL,
		DNSWL:                in.DNSWL,
		Exempt:               a.cfg.Auth.Networks(),
		MaxMessagesPerSender: in.MaxMessagesPerSender,
		RateWindow:           time.Hour,
	}
	if resolver != nil {
		o.Resolver = resolver
	} else if len(in.DNSBL) > 0 || len(in.DNSWL) > 0 {
		return nil, errors.New("[inbound] dnsbl and dnswl need a DNS resolver: set [dns] resolver")
	}
	if in.Greylist {
		o.Greylist = &gate.GreylistOptions{
			Path:        filepath.Join(a.cfg.DataDir, greylistFile),
			Delay:       in.GreylistDelay.Duration,
			RetryWindow: in.GreylistRetryWindow.Duration,
			AllowTTL:    in.GreylistAllowTTL.Duration,
			// With the postgres backend every node greylists and passes
			// the same senders.
			Postgres: a.pool,
		}
	}
	g, err := gate.New(ctx, o)
	if err != nil {
		return nil, err
	}
	a.log.Info("inbound checks on port 25", "proto", "smtp", "dnsbl", len(in.DNSBL), "dnswl", len(in.DNSWL),
		"greylist", in.Greylist, "max_messages_per_sender", in.MaxMessagesPerSender)
	return g, nil
}

// smtpGate gives smtpd the gate: *gate.Gate's Connect returns its own
// type (gate does not import smtpd), and no checks must be a nil
// interface, not a nil *gate.Conn inside one.
type smtpGate struct{ g *gate.Gate }

func (s smtpGate) Connect(ctx context.Context, remote netip.Addr, log *slog.Logger) smtpd.GateConn {
	if c := s.g.Connect(ctx, remote, log); c != nil {
		return c
	}
	return nil
}

// closeGateAfter returns a shutdown that stops the SMTP servers, then
// closes the gate (its lookups end with their connections; its database
// after the last session).
func closeGateAfter(a *app, g *gate.Gate, shutdown func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		var err error
		if shutdown != nil {
			err = shutdown(ctx)
		}
		if cerr := g.Close(); cerr != nil {
			a.log.Error("close greylist database", "proto", "smtp", "err", cerr)
		}
		return err
	}
}
