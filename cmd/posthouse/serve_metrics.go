package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/metrics"
	"github.com/posthouse/posthouse/smtpd"
)

// Metrics wiring: package metrics imports none of ours, and the packages
// it counts expose hooks (an Options func) or take an interface cmd can
// wrap. Everything here does nothing when the Recorder is nil.

// openMetrics opens the Recorder whose 24-hour counts live in data_dir.
func openMetrics(cfg *config.Config, log *slog.Logger) (*metrics.Recorder, error) {
	return metrics.Open(cfg.DataDir, log)
}

// countingListener counts accepted connections of one [listen] entry.
type countingListener struct {
	net.Listener
	name string
	rec  *metrics.Recorder
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.rec.Connection(l.name)
	}
	return c, err
}

func countConns(ln net.Listener, name string, rec *metrics.Recorder) net.Listener {
	if ln == nil || rec == nil {
		return ln
	}
	return countingListener{Listener: ln, name: name, rec: rec}
}

// countingAuth is the user database as one protocol sees it, counting the
// results of its logins (posthouse_auth_total{proto}). The other methods
// are *auth.DB's own.
type countingAuth struct {
	*auth.DB
	proto string
	rec   *metrics.Recorder
}

// authFor returns what protocol proto authenticates against: a.auth,
// counted when metrics are on.
func (a *app) authFor(proto string) *countingAuth {
	return &countingAuth{DB: a.auth, proto: proto, rec: a.metrics}
}

func authResult(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, auth.ErrBadCredentials), errors.Is(err, sasl.ErrUnexpectedClientResponse):
		return "failure"
	case errors.Is(err, auth.ErrThrottled):
		return "throttled"
	}
	return "error"
}

func (c *countingAuth) Authenticate(ctx context.Context, username, password string, remote netip.Addr) (auth.User, error) {
	u, err := c.DB.Authenticate(ctx, username, password, remote)
	c.rec.Auth(c.proto, authResult(err))
	return u, err
}

func (c *countingAuth) NewSASLServer(ctx context.Context, mech string, remote netip.Addr, done func(auth.User)) (sasl.Server, error) {
	s, err := c.DB.NewSASLServer(ctx, mech, remote, done)
	if err != nil || c.rec == nil {
		return s, err
	}
	return &countingSASL{Server: s, report: func(err error) { c.rec.Auth(c.proto, authResult(err)) }}, nil
}

// countingSASL reports an exchange's result once: its first error, or its
// completion.
type countingSASL struct {
	sasl.Server
	report   func(error)
	reported bool
}

func (s *countingSASL) Next(response []byte) ([]byte, bool, error) {
	ch, done, err := s.Server.Next(response)
	if (err != nil || done) && !s.reported {
		s.reported = true
		s.report(err)
	}
	return ch, done, err
}

// smtpObserver counts smtpd's accepted and refused messages.
func smtpObserver(rec *metrics.Recorder) func(smtpd.Outcome) {
	if rec == nil {
		return nil
	}
	return func(o smtpd.Outcome) {
		if !o.Accepted {
			rec.MessageRejected(o.Stage, o.Reason, o.Temporary)
			return
		}
		mode := "submission"
		if o.Mode == smtpd.ModeMTA {
			mode = "mta"
		}
		rec.MessageReceived(mode)
	}
}

// dnsObserver times the resolver's exchanges.
func dnsObserver(rec *metrics.Recorder) func(string, time.Duration, error) {
	if rec == nil {
		return nil
	}
	return func(qtype string, d time.Duration, err error) {
		result := "ok"
		switch {
		case errors.Is(err, dns.ErrNotFound):
			result = "notfound"
		case err != nil:
			result = "error"
		}
		rec.DNSLookup(qtype, result, d)
	}
}

// countingStore is the delivery pipeline's store, counting local copies
// and timing how long each took to become durable.
type countingStore struct {
	delivery.Store
	rec *metrics.Recorder
}

func deliveryStore(store mailstore.Store, rec *metrics.Recorder) delivery.Store {
	s := delivery.MailStore(store)
	if rec == nil {
		return s
	}
	return countingStore{Store: s, rec: rec}
}

func (s countingStore) Open(ctx context.Context, name string) (delivery.Account, error) {
	a, err := s.Store.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	ca := countingAccount{Account: a, rec: s.rec}
	// The pipeline creates a missing mailbox (Sieve's fileinto) through
	// this optional interface: keep it visible.
	if mc, ok := a.(delivery.MailboxCreator); ok {
		return countingCreator{countingAccount: ca, MailboxCreator: mc}, nil
	}
	return ca, nil
}

type countingCreator struct {
	countingAccount
	delivery.MailboxCreator
}

type countingAccount struct {
	delivery.Account
	rec *metrics.Recorder
}

func (a countingAccount) Deliver(ctx context.Context, r io.Reader, opts mailstore.DeliverOptions) (mailstore.AppendResult, error) {
	start := time.Now()
	res, err := a.Account.Deliver(ctx, r, opts)
	a.rec.LocalDelivery(err == nil, time.Since(start))
	return res, err
}

// smtpListenerName is the [listen] name of an smtpd mode, the proto label
// of its logins.
func smtpListenerName(m smtpd.Mode) string {
	for _, l := range smtpListeners {
		if l.mode == m {
			return l.name
		}
	}
	return "smtp"
}
