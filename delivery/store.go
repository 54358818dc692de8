package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
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
func (p *Pipeline) commitOne(ctx context.Context, m *Message, account string, pl *plan, log *slog.Logger) (err error) {
	log = log.With("rcpt", account)
	if len(pl.committed) > 0 {
		defer func() { pl.done(ctx, err, log) }()
	}
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
	if len(pl.bottom) > 0 {
		var ok bool
		if msg, ok = appendFields(msg, pl.bottom); !ok {
			log.Debug("header does not end within the bound: fields to append go on top", "fields", len(pl.bottom))
			added += renderFields(pl.bottom)
		}
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

// done calls the filters' Committed hooks with the account's outcome; a
// hook that panics is logged and the others still run.
func (pl *plan) done(ctx context.Context, err error, log *slog.Logger) {
	for _, fn := range pl.committed {
		func() {
			defer func() {
				if v := recover(); v != nil {
					log.Error("filter's commit hook panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				}
			}()
			fn(ctx, err)
		}()
	}
}

// MailboxCreator is what an Account needs for Copy.Create; a
// mailstore.Account has it.
type MailboxCreator interface {
	Mailbox(ctx context.Context, name string) (mailstore.Mailbox, error)
	CreateMailbox(ctx context.Context, name, specialUse string) (mailstore.Mailbox, error)
}

var _ MailboxCreator = mailstore.Account(nil)

// copies resolves the plan's copies: the default one (the mailbox and
// flags the filters chose) unless a filter gave Copies; a Copy of the
// default place gets the default mailbox and flags added to its own.
// Copies into one mailbox are merged.
func (pl *plan) resolveCopies() []Copy {
	if pl.copies == nil {
		return []Copy{{Mailbox: pl.mailbox, Flags: pl.flags}}
	}
	var out []Copy
	for _, c := range pl.copies {
		if c.Mailbox == "" {
			c = Copy{Mailbox: pl.mailbox, Flags: unite(pl.flags, c.Flags)}
		}
		if strings.EqualFold(c.Mailbox, mailstore.Inbox) {
			c.Mailbox = ""
		}
		if i := slices.IndexFunc(out, func(o Copy) bool { return o.Mailbox == c.Mailbox }); i >= 0 {
			out[i].Flags = unite(out[i].Flags, c.Flags)
			out[i].Create = out[i].Create || c.Create
			continue
		}
		c.Flags = slices.Clone(c.Flags)
		out = append(out, c)
	}
	return out
}

// unite returns a's flags and those of b not in a (system flags compared
// without regard to case, as IMAP does; keywords too).
func unite(a, b []string) []string {
	out := slices.Clone(a)
	for _, f := range b {
		if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, f) }) {
			out = append(out, f)
		}
	}
	return out
}

// store writes the account's copies of msg (the message less the fields
// filters removed), each with Return-Path (RFC 5321 §4.4) and the
// filters' fields in front; each Deliver is durable when it returns. A
// mailbox the account lacks means INBOX (the store's rule: mail is never
// refused for its folder) unless the copy asks to create it. A copy that
// fails fails the account: a retry stores the earlier copies again, a
// duplicate rather than a loss.
func (p *Pipeline) store(ctx context.Context, m *Message, msg *io.SectionReader, account string, pl *plan, added string, log *slog.Logger) error {
	a, err := p.opts.Store.Open(ctx, account)
	if err != nil {
		return logStoreError(log, err)
	}
	defer a.Close()
	prefix := "Return-Path: <" + m.Envelope.From + ">\r\n" + added
	for _, c := range pl.resolveCopies() {
		if c.Create && c.Mailbox != "" {
			createMailbox(ctx, a, c.Mailbox, log)
		}
		opts := mailstore.DeliverOptions{Mailbox: c.Mailbox}
		for _, f := range c.Flags {
			opts.Flags = append(opts.Flags, imap.Flag(f))
		}
		res, err := a.Deliver(ctx, io.MultiReader(strings.NewReader(prefix), io.NewSectionReader(msg, 0, msg.Size())), opts)
		if err != nil {
			return logStoreError(log, err)
		}
		mbox := c.Mailbox
		if mbox == "" {
			mbox = mailstore.Inbox
		}
		log.Info("delivered", "mailbox", mbox, "uid", uint32(res.UID), "size", res.Size)
	}
	return nil
}

// createMailbox makes name in a when it is missing. Failing that (a name
// the store refuses, a store that cannot), the copy goes to INBOX by the
// usual rule: logged, never an error.
func createMailbox(ctx context.Context, a Account, name string, log *slog.Logger) {
	mc, ok := a.(MailboxCreator)
	if !ok {
		log.Warn("cannot create mailboxes in this store", "mailbox", name)
		return
	}
	if _, err := mc.Mailbox(ctx, name); err == nil {
		return
	}
	_, err := mc.CreateMailbox(ctx, name, "")
	switch {
	case err == nil:
		log.Info("mailbox created for delivery", "mailbox", name)
	case errors.Is(err, mailstore.ErrMailboxExists):
	default:
		log.Warn("creating mailbox for delivery", "mailbox", name, "err", err)
	}
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
