package main

import (
	"context"
	"log/slog"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/delivery"
)

// newPipeline builds the local delivery pipeline every local copy goes
// through (package delivery): auth resolves the recipients, the mailstore
// stores, q carries redirects (nil: none possible). The pipeline has no
// state of its own, so the services that need one each build it here from
// the same shared resources: smtpd for SMTP intake, the queue for its
// local transport. Filters run in order: inbound authentication (SPF,
// DKIM, DMARC), the milters, the junk filter, users' Sieve scripts.
func newPipeline(log *slog.Logger, users *auth.DB, store delivery.Store, q delivery.Queue, filters ...delivery.Filter) (*delivery.Pipeline, error) {
	opts := delivery.Options{
		Logger:    log.With("proto", "delivery"),
		Directory: users,
		Store:     store,
		Filters:   filters,
	}
	if q != nil {
		opts.Queue = q
	}
	return delivery.New(opts)
}

// pipelineLater lets the queue hold the pipeline before it exists: the
// pipeline's redirects need the queue, and the queue's local transport
// needs the pipeline. serve sets p before the queue starts.
type pipelineLater struct{ p *delivery.Pipeline }

func (l *pipelineLater) Deliver(ctx context.Context, req *delivery.Request) delivery.Outcome {
	return l.p.Deliver(ctx, req)
}
