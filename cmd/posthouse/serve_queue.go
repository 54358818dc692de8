package main

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/metrics"
	"github.com/posthouse/posthouse/queue"
	"github.com/posthouse/posthouse/smtpclient"
	"github.com/posthouse/posthouse/srs"
)

// openQueue opens the outbound queue (data_dir/queue.sqlite and
// data_dir/queue/) without starting its delivery workers: serve starts them
// (Start) before the listeners and stops them (Shutdown) after.
// Its local transport delivers through local, whose pipeline serve sets
// before Start (the pipeline's redirects need the queue in turn).
func openQueue(ctx context.Context, cfg *config.Config, log *slog.Logger, users *auth.DB, local *pipelineLater, rewriter *srs.Rewriter, rec *metrics.Recorder, res resolver) (*queue.Queue, error) {
	opts := queueOptions(cfg)
	if rec != nil {
		opts.OnAttempt = rec.DeliveryAttempt
	}
	opts.Logger = log
	opts.Locals = authLocals{users}
	opts.Local = local
	if rewriter != nil {
		opts.SRS = rewriter
		log.Info("SRS for forwarded mail", "domain", rewriter.Domain())
	}
	if err := res.err; err != nil {
		// Keep accepting mail: deliveries fail temporarily and are retried
		// once the resolver is fixed and the server restarted.
		log.Error("no DNS resolver: outbound mail stays queued; set [dns] resolver", "err", err)
	} else {
		opts.Resolver = res.r
		log.Info("DNS resolver", "addr", res.r.Server())
	}
	if err := queuePostgres(ctx, cfg, &opts); err != nil {
		return nil, err
	}
	q, err := queue.Open(ctx, opts)
	if err != nil {
		if opts.Postgres != nil {
			opts.Postgres.Close()
		}
		return nil, err
	}
	rec.SetQueueStats(q.Stats)
	if opts.Postgres != nil {
		log.Info("queue in PostgreSQL, shared with the other nodes", "node", q.Node(), "claim_lease", opts.Lease)
	}
	return q, nil
}

// queueOptions are the queue settings taken from the configuration.
func queueOptions(cfg *config.Config) queue.Options {
	return queue.Options{
		DataDir:        cfg.DataDir,
		Hostname:       cfg.Hostname,
		RemotePort:     cfg.Queue.RemotePort,
		Expiry:         time.Duration(cfg.Queue.Expiry.Duration),
		Lease:          cfg.Queue.ClaimLease.Duration,
		MaxMessageSize: int64(cfg.Limits.MaxMessageSize) + traceHeaderSlack,
		MaxConcurrent:  cfg.Queue.MaxConnections,
		MaxPerDomain:   cfg.Queue.MaxPerDomain,
		MaxPerHost:     cfg.Queue.MaxPerHost,
		Dial:           (&net.Dialer{Timeout: cfg.Queue.ConnectTimeout.Duration}).DialContext,
		Timeouts: smtpclient.Timeouts{
			Greeting:   cfg.Queue.GreetingTimeout.Duration,
			Command:    cfg.Queue.CommandTimeout.Duration,
			Mail:       cfg.Queue.MailTimeout.Duration,
			Rcpt:       cfg.Queue.RcptTimeout.Duration,
			DataInit:   cfg.Queue.DataInitTimeout.Duration,
			DataBlock:  cfg.Queue.DataBlockTimeout.Duration,
			DataDone:   cfg.Queue.DataDoneTimeout.Duration,
			Connection: cfg.Queue.ConnectionTimeout.Duration,
		},
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
