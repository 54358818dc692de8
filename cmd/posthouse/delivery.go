package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/queue"
	"github.com/posthouse/posthouse/smtpd"
)

// newPipeline builds the local delivery pipeline every local copy goes
// through (package delivery): auth resolves the recipients, the mailstore
// stores, q carries redirects (nil: none possible). The pipeline has no
// state of its own, so the services that need one each build it here from
// the same shared resources: smtpd for SMTP intake, the queue for its
// local transport. Filters run in order: inbound authentication, the
// milters, the junk filter.
func newPipeline(log *slog.Logger, users *auth.DB, store mailstore.Store, q delivery.Queue, filters []delivery.Filter) (*delivery.Pipeline, error) {
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

// smtpDelivery adapts the pipeline to smtpd.Delivery (smtpd does not
// import package delivery).
type smtpDelivery struct{ p *delivery.Pipeline }

func (d smtpDelivery) DeliverLocal(ctx context.Context, m *smtpd.LocalMessage) smtpd.LocalOutcome {
	c := delivery.Client{IP: m.Remote, Helo: m.Helo, User: m.User}
	if m.TLS != nil {
		c.TLSVersion, c.TLSCipher = m.TLS.Version, m.TLS.CipherSuite
	}
	out := d.p.Deliver(ctx, &delivery.Request{
		Envelope: delivery.Envelope{Source: delivery.Source(m.Mode.String()), ID: m.ID, From: m.From, UTF8: m.UTF8, Client: c},
		Rcpts:    m.Rcpts,
		Body:     m.Body,
		Log:      m.Log,
	})
	res := smtpd.LocalOutcome{Remote: out.Remote, Results: make([]smtpd.LocalResult, len(out.Results))}
	for i, r := range out.Results {
		res.Results[i] = smtpd.LocalResult{Rcpt: r.Rcpt, Err: r.Err}
	}
	return res
}

// queueDelivery adapts the pipeline to queue.LocalDelivery (the queue does
// not import package delivery), with an unknown recipient reported as
// queue.ErrNoSuchLocal.
type queueDelivery struct{ p *delivery.Pipeline }

func (d *queueDelivery) DeliverLocal(ctx context.Context, m *queue.LocalMessage) queue.LocalOutcome {
	out := d.p.Deliver(ctx, &delivery.Request{
		Envelope: delivery.Envelope{Source: delivery.SourceQueue, ID: m.ID, From: m.From, UTF8: m.UTF8},
		Rcpts:    m.Rcpts,
		Body:     m.Body,
		Log:      m.Log,
	})
	res := queue.LocalOutcome{Remote: out.Remote, Results: make([]queue.LocalResult, len(out.Results))}
	for i, r := range out.Results {
		err := r.Err
		if errors.Is(err, auth.ErrNoSuchUser) {
			err = fmt.Errorf("%w: %w", queue.ErrNoSuchLocal, err)
		}
		res.Results[i] = queue.LocalResult{Rcpt: r.Rcpt, Err: err}
	}
	return res
}
