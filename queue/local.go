package queue

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/smtpclient"
)

// The local transport. A queued recipient in one of our own domains is
// delivered into the mailstore, never through MX: our own MX is this server,
// so that route could only loop. Such recipients reach the queue when smtpd
// accepted a message but one local copy failed (a full mailbox, a store
// error); the queue retries them on its schedule and bounces them at expiry,
// as for any destination.
var (
	replyLocalDelivered = smtpclient.Reply{Code: 250, Enhanced: "2.0.0", Text: "delivered to the local mailbox"}
	replyLocalForwarded = smtpclient.Reply{Code: 250, Enhanced: "2.0.0", Text: "accepted for the alias's targets"}
	replyLocalUnknown   = smtpclient.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such local mailbox"}
	replyLocalFull      = smtpclient.Reply{Code: 452, Enhanced: "4.2.2", Text: "mailbox full"}
	replyLocalTemp      = smtpclient.Reply{Code: 451, Enhanced: "4.3.0", Text: "local delivery failed temporarily"}
)

// isLocalDomain reports whether domain is ours; without Locals or a Store
// nothing is delivered locally.
func (q *Queue) isLocalDomain(ctx context.Context, domain string) (bool, error) {
	if q.opts.Locals == nil || q.opts.Store == nil {
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
// resolves to one mailbox gets that mailbox's result. An alias with several
// targets is concluded at once: the targets that did not take the message
// now (and foreign ones) go into a new queue entry of their own, so a retry
// never repeats a copy already delivered.
func (q *Queue) deliverLocalRcpt(ctx context.Context, m *msgInfo, rcpt string) smtpclient.Reply {
	log := q.log.With("queueid", m.id, "rcpt", rcpt)
	accounts, remote, err := q.opts.Locals.Resolve(ctx, rcpt)
	switch {
	case errors.Is(err, ErrNoSuchLocal):
		return replyLocalUnknown
	case err != nil:
		log.Error("queue: resolve local recipient", "err", err)
		return replyLocalTemp
	}
	if len(accounts) == 1 && len(remote) == 0 {
		return q.deliverAccount(ctx, m, accounts[0])
	}
	rest := remote
	for _, acct := range accounts {
		if r := q.deliverAccount(ctx, m, acct); r.Code/100 != 2 {
			rest = append(rest, acct)
		}
	}
	if len(rest) == 0 {
		return replyLocalDelivered
	}
	f, err := os.Open(q.spoolPath(m.id))
	if err != nil {
		log.Error("queue: open spool", "err", err)
		return replyLocalTemp
	}
	defer f.Close()
	id, err := q.Enqueue(ctx, m.from, rest, io.MultiReader(strings.NewReader(m.dkim), f))
	if err != nil {
		log.Error("queue: requeue alias targets", "err", err)
		return replyLocalTemp
	}
	log.Info("alias targets queued", "newqueueid", id, "rcpts", len(rest))
	return replyLocalForwarded
}

// deliverAccount stores one copy, with the Return-Path of RFC 5321 §4.4.
func (q *Queue) deliverAccount(ctx context.Context, m *msgInfo, account string) smtpclient.Reply {
	log := q.log.With("queueid", m.id, "rcpt", account)
	f, err := os.Open(q.spoolPath(m.id))
	if err != nil {
		log.Error("queue: open spool", "err", err)
		return replyLocalTemp
	}
	defer f.Close()
	a, err := q.opts.Store.Open(ctx, account)
	if err != nil {
		if errors.Is(err, mailstore.ErrBadAccountName) || errors.Is(err, mailstore.ErrNoSuchAccount) {
			return replyLocalUnknown
		}
		log.Error("queue: open local account", "err", err)
		return replyLocalTemp
	}
	defer a.Close()
	body := io.MultiReader(strings.NewReader("Return-Path: <"+m.from+">\r\n"+m.dkim), f)
	if _, err := a.Deliver(ctx, body, mailstore.DeliverOptions{}); err != nil {
		if errors.Is(err, mailstore.ErrOverQuota) {
			log.Info("local mailbox full, will retry")
			return replyLocalFull
		}
		log.Error("queue: local delivery", "err", err)
		return replyLocalTemp
	}
	log.Info("delivered locally", "size", m.size)
	return replyLocalDelivered
}
