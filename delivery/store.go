package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/internal/readerat"
	"github.com/posthouse/posthouse/mailstore"
)

// ErrNoQueue: a filter redirected a message but the pipeline has no queue.
var ErrNoQueue = errors.New("delivery: redirect without a queue")

// commit carries out each recipient's plan, up to maxParallel at a time,
// and reports each one's error through done (called once per index, from
// any goroutine).
func (p *Pipeline) commit(ctx context.Context, m *Message, plans []plan, done func(i int, err error), log *slog.Logger) {
	if len(plans) == 1 {
		done(0, p.commitOne(ctx, m, m.Recipients[0].Account, &plans[0], log))
		return
	}
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i := range plans {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			done(i, p.commitOne(ctx, m, m.Recipients[i].Account, &plans[i], log))
		}()
	}
	wg.Wait()
}

// commitOne is one account's transaction: the redirect (durable in the
// queue), then the stored copy (durable in the store). Either failing
// fails the account; a retry of it may then repeat a redirect that went
// out, which we prefer to losing the copy.
func (p *Pipeline) commitOne(ctx context.Context, m *Message, account string, pl *plan, log *slog.Logger) error {
	log = log.With("rcpt", account)
	if pl.action == Reject {
		log.Info("delivery refused by filter", "filter", pl.by, "code", pl.reply.Code)
		return &RejectError{Filter: pl.by, Reply: pl.reply}
	}
	added := pl.header()
	msg := m.Body()
	if len(pl.remove) > 0 {
		cut, more := locateFields(msg, pl.remove)
		if more {
			log.Warn("header fields to remove in more than the limit of stretches; the rest are kept", "limit", maxCutRanges)
		}
		msg = readerat.Cut(msg, cut)
		log.Debug("header fields removed", "refs", len(pl.remove), "ranges", len(cut))
	}
	if len(pl.redirect) > 0 {
		if p.opts.Queue == nil {
			log.Error("filter redirected the message, but there is no queue", "to", len(pl.redirect))
			return ErrNoQueue
		}
		// No Return-Path on the way out (RFC 5321 §4.4: it is added at
		// final delivery only).
		id, err := p.opts.Queue.Enqueue(ctx, m.Envelope.From, pl.redirect, io.MultiReader(strings.NewReader(added), io.NewSectionReader(msg, 0, msg.Size())))
		if err != nil {
			log.Error("queueing redirect", "err", err)
			return fmt.Errorf("delivery: redirect: %w", err)
		}
		log.Info("redirected", "queueid", id, "to", len(pl.redirect))
	}
	if pl.action == Discard {
		log.Info("discarded by filter", "filter", pl.by)
		return nil
	}
	return p.store(ctx, m, msg, account, pl, added, log)
}

// store writes one copy, msg (the message less the fields filters
// removed), with Return-Path (RFC 5321 §4.4) and the filters' fields in
// front; Deliver is durable when it returns. A mailbox the account lacks
// means INBOX (the store's rule: mail is never refused for its folder).
func (p *Pipeline) store(ctx context.Context, m *Message, msg *io.SectionReader, account string, pl *plan, added string, log *slog.Logger) error {
	a, err := p.opts.Store.Open(ctx, account)
	if err != nil {
		return logStoreError(log, err)
	}
	defer a.Close()
	opts := mailstore.DeliverOptions{Mailbox: pl.mailbox}
	for _, f := range pl.flags {
		opts.Flags = append(opts.Flags, imap.Flag(f))
	}
	prefix := "Return-Path: <" + m.Envelope.From + ">\r\n" + added
	res, err := a.Deliver(ctx, io.MultiReader(strings.NewReader(prefix), io.NewSectionReader(msg, 0, msg.Size())), opts)
	if err != nil {
		return logStoreError(log, err)
	}
	mbox := pl.mailbox
	if mbox == "" {
		mbox = mailstore.Inbox
	}
	log.Info("delivered", "mailbox", mbox, "uid", uint32(res.UID), "size", res.Size)
	return nil
}

func logStoreError(log *slog.Logger, err error) error {
	switch {
	case errors.Is(err, mailstore.ErrOverQuota):
		log.Warn("delivery refused: over quota")
	case errors.Is(err, mailstore.ErrNoSuchAccount), errors.Is(err, mailstore.ErrBadAccountName):
		log.Warn("delivery refused: no such account")
	default:
		log.Error("delivery failed", "err", err)
	}
	return err
}
