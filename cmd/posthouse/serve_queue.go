package main

import (
	"context"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/queue"
)

func init() { registerService("queue", 10, startQueue) }

// startQueue opens the outbound queue (data_dir/queue.sqlite and
// data_dir/queue/), starts its delivery workers and hands it to the
// services after it (smtp) through a.queue.
func startQueue(ctx context.Context, a *app) (func(context.Context) error, error) {
	log := a.log.With("proto", "queue")
	opts := queueOptions(a.cfg)
	opts.Logger = log
	opts.Locals = authLocals{a.auth}
	// The queue's local transport and the pipeline's redirects need each
	// other: the pipeline is set before the first attempt (Start).
	local := &queueDelivery{}
	opts.Local = local
	res, err := dns.New(dns.Options{Server: a.cfg.DNS.Resolver})
	if err != nil {
		// Keep accepting mail: deliveries fail temporarily and are retried
		// once the resolver is fixed and the server restarted.
		log.Error("no DNS resolver: outbound mail stays queued; set [dns] resolver", "err", err)
	} else {
		opts.Resolver = res
		log.Info("DNS resolver", "addr", res.Server())
	}
	q, err := queue.Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	if local.p, err = newPipeline(a, q); err != nil {
		q.Close()
		return nil, err
	}
	q.Start()
	a.queue = q
	return func(ctx context.Context) error {
		err := q.Shutdown(ctx)
		if cerr := q.Close(); err == nil {
			err = cerr
		}
		return err
	}, nil
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

// authLocals adapts the user database to queue.Locals.
type authLocals struct{ db *auth.DB }

func (l authLocals) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	return l.db.IsLocalDomain(ctx, domain)
}
