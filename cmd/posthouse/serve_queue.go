package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/queue"
)

// openQueue opens the outbound queue (data_dir/queue.sqlite and
// data_dir/queue/) without starting its delivery workers: serve starts them
// (Start) before the listeners and stops them (Shutdown) after.
func openQueue(ctx context.Context, cfg *config.Config, log *slog.Logger, users *auth.DB, store mailstore.Store) (*queue.Queue, error) {
	opts := queueOptions(cfg)
	opts.Logger = log
	opts.Locals = authLocals{users}
	opts.Store = store
	res, err := dns.New(dns.Options{Server: cfg.DNS.Resolver})
	if err != nil {
		// Keep accepting mail: deliveries fail temporarily and are retried
		// once the resolver is fixed and the server restarted.
		log.Error("no DNS resolver: outbound mail stays queued; set [dns] resolver", "err", err)
	} else {
		opts.Resolver = res
		log.Info("DNS resolver", "addr", res.Server())
	}
	return queue.Open(ctx, opts)
}

// queueOptions are the queue settings taken from the configuration.
func queueOptions(cfg *config.Config) queue.Options {
	return queue.Options{
		DataDir:        cfg.DataDir,
		Hostname:       cfg.Hostname,
		RemotePort:     cfg.Queue.RemotePort,
		Expiry:         time.Duration(cfg.Queue.Expiry.Duration),
		MaxMessageSize: int64(cfg.Limits.MaxMessageSize) + traceHeaderSlack,
	}
}

// traceHeaderSlack lets a message of exactly [limits] max_message_size
// through the queue after smtpd prepended its trace fields (Return-Path,
// Received, Authentication-Results).
const traceHeaderSlack = 64 << 10

// authLocals adapts the user database to queue.Locals, so that a DSN for a
// local sender is delivered straight into their mailbox.
type authLocals struct{ db *auth.DB }

func (l authLocals) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	return l.db.IsLocalDomain(ctx, domain)
}

func (l authLocals) Resolve(ctx context.Context, address string) ([]string, []string, error) {
	r, err := l.db.Resolve(ctx, address)
	if errors.Is(err, auth.ErrNoSuchUser) || errors.Is(err, auth.ErrNotLocal) {
		return nil, nil, fmt.Errorf("%w: %v", queue.ErrNoSuchLocal, err)
	}
	if err != nil {
		return nil, nil, err
	}
	return r.Local, r.Remote, nil
}
