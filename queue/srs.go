package queue

import (
	"context"

	"github.com/posthouse/posthouse/internal/mailaddr"
)

// SenderRewriter makes the envelope sender for mail we relay on behalf of
// a sender outside our domains: the Sender Rewriting Scheme (package srs;
// cmd/posthouse passes *srs.Rewriter). The queue does not import it.
type SenderRewriter interface {
	// Forward returns the address to give as MAIL FROM instead of
	// sender, or an error when it cannot make one (then the original is
	// used).
	Forward(sender string) (string, error)
}

// mailFrom is the MAIL FROM of an attempt to a remote host: the stored
// sender, or with Options.SRS its rewritten form when the sender is not
// in one of our domains (Options.Locals). That is mail we forward (an
// alias's foreign targets, a filter's redirect) or send under a foreign
// send-as grant: the receiver's SPF check of the original domain would
// fail against our address, and its bounces come back to the SRS
// address, which smtpd reverses. The null sender, local senders and
// messages without Locals are left alone; the stored sender is never
// changed, so our own DSNs go to the original sender directly, and each
// attempt gets a fresh SRS timestamp.
func (q *Queue) mailFrom(ctx context.Context, m *msgInfo) string {
	if q.opts.SRS == nil || q.opts.Locals == nil || m.from == "" {
		return m.from
	}
	domain, ok := mailaddr.Domain(m.from)
	if !ok {
		return m.from
	}
	local, err := q.opts.Locals.IsLocalDomain(ctx, domain)
	if err != nil {
		if ctx.Err() == nil {
			q.log.Error("queue: SRS: domain lookup, sending with the original sender", "queueid", m.id, "err", err)
		}
		return m.from
	}
	if local {
		return m.from
	}
	fwd, err := q.opts.SRS.Forward(m.from)
	if err != nil {
		q.log.Warn("queue: SRS: cannot rewrite, sending with the original sender", "queueid", m.id, "from", m.from, "err", err)
		return m.from
	}
	if fwd != m.from {
		q.log.Debug("sender rewritten (SRS)", "queueid", m.id, "from", m.from, "mailfrom", fwd)
	}
	return fwd
}
