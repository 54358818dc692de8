package queue

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/internal/readerat"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/smtpclient"
)

// The local transport. A queued recipient in one of our own domains is
// delivered through the local delivery pipeline (Options.Local), never
// through MX: our own MX is this server, so that route could only loop.
// Such recipients reach the queue when smtpd accepted a message but one
// local copy failed (a full mailbox, a store error, a filter's reject),
// and as an alias's targets; the queue retries them on its schedule and
// bounces them at expiry, as for any destination.
var (
	replyLocalDelivered = smtpclient.Reply{Code: 250, Enhanced: "2.0.0", Text: "delivered to the local mailbox"}
	replyLocalForwarded = smtpclient.Reply{Code: 250, Enhanced: "2.0.0", Text: "accepted for the alias's targets"}
	replyLocalUnknown   = smtpclient.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such local mailbox"}
	replyLocalFull      = smtpclient.Reply{Code: 452, Enhanced: "4.2.2", Text: "mailbox full"}
	replyLocalTemp      = smtpclient.Reply{Code: 451, Enhanced: "4.3.0", Text: "local delivery failed temporarily"}
)

// LocalDelivery is the local delivery pipeline: it resolves recipients to
// accounts (aliases, user+tag, catch-all), runs the filters and stores one
// durable copy per account with its Return-Path. *delivery.Pipeline
// implements it. A Result's Err wraps auth.ErrNoSuchUser for a recipient
// that does not resolve, mailstore.ErrOverQuota for a full mailbox, or is
// a *delivery.RejectError (a filter's reply); anything else is temporary.
type LocalDelivery interface {
	Deliver(ctx context.Context, req *delivery.Request) delivery.Outcome
}

// localReply translates a delivery.Result's error into the recipient's status.
func localReply(err error) smtpclient.Reply {
	var rp *delivery.RejectError
	switch {
	case err == nil:
		return replyLocalDelivered
	case errors.Is(err, auth.ErrNoSuchUser), errors.Is(err, mailstore.ErrNoSuchAccount), errors.Is(err, mailstore.ErrBadAccountName):
		return replyLocalUnknown
	case errors.Is(err, mailstore.ErrOverQuota):
		return replyLocalFull
	case errors.As(err, &rp):
		code, e, text := rp.Reply.Code, rp.Reply.Enhanced, rp.Reply.Text
		return smtpclient.Reply{Code: code, Enhanced: fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2]), Text: text}
	default:
		return replyLocalTemp
	}
}

// isLocalDomain reports whether domain is ours; without Locals or Local
// nothing is delivered locally.
func (q *Queue) isLocalDomain(ctx context.Context, domain string) (bool, error) {
	if q.opts.Locals == nil || q.opts.Local == nil {
		return false, nil
	}
	return q.opts.Locals.IsLocalDomain(ctx, domain)
}

// deliverLocalAttempt makes one local attempt for every recipient of p.
func (q *Queue) deliverLocalAttempt(ctx context.Context, p *prepared) []result {
	res := make([]result, 0, len(p.rcpts))
	for _, rcpt := range p.rcpts {
		if ctx.Err() != nil {
			return append(res, interrupted(p.rcpts[len(res):])...)
		}
		res = append(res, result{rcpt: rcpt, reply: q.deliverLocalRcpt(ctx, p.m, rcpt), remote: "local"})
	}
	return res
}

// deliverLocalRcpt delivers to what rcpt resolves to. An address that
// resolves to one account gets that account's result. An alias with several
// targets is concluded at once: the targets that did not take the message
// now (and foreign ones) go into a new queue entry of their own, so a retry
// never repeats a copy already delivered.
func (q *Queue) deliverLocalRcpt(ctx context.Context, m *msgInfo, rcpt string) smtpclient.Reply {
	log := q.log.With("queueid", m.id)
	f, err := q.st.body(ctx, m.id)
	if err != nil {
		log.Error("queue: open spool", "rcpt", rcpt, "err", err)
		return replyLocalTemp
	}
	defer f.Close()
	body := readerat.Concat(readerat.String(m.dkim), io.NewSectionReader(f, 0, f.Size()))
	out := q.opts.Local.Deliver(ctx, &delivery.Request{
		Envelope: delivery.Envelope{Source: delivery.SourceQueue, ID: m.id, From: m.from, UTF8: m.smtputf8},
		Rcpts:    []string{rcpt},
		Body:     body,
		Log:      log,
	})
	if len(out.Results) == 1 && len(out.Remote) == 0 {
		return localReply(out.Results[0].Err)
	}
	rest := out.Remote
	for _, r := range out.Results {
		if r.Err != nil {
			rest = append(rest, r.Rcpt)
		}
	}
	if len(rest) == 0 {
		return replyLocalDelivered
	}
	id, err := q.Enqueue(ctx, m.from, rest, io.NewSectionReader(body, 0, body.Size()))
	if err != nil {
		log.Error("queue: requeue alias targets", "rcpt", rcpt, "err", err)
		return replyLocalTemp
	}
	log.Info("alias targets queued", "rcpt", rcpt, "newqueueid", id, "rcpts", len(rest))
	return replyLocalForwarded
}
