package sievefilter

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/sieve"
	"github.com/posthouse/posthouse/sievestore"
)

// message is what every recipient's run shares: the message's own
// header fields (parsed once by delivery) and the body.
type message struct {
	own []sieve.Field
	// hops are the trace fields of earlier Sieve redirects (lower case).
	hops []string
	// subject, messageID, references: for the vacation response.
	messageID, references string
}

func newMessage(m *delivery.Message) *message {
	h := m.Header()
	msg := &message{own: sieve.HeaderFields(h.Header)}
	for _, f := range msg.own {
		switch strings.ToLower(f.Name) {
		case strings.ToLower(TraceField):
			msg.hops = append(msg.hops, strings.ToLower(strings.TrimSpace(f.Value)))
		case "message-id":
			if msg.messageID == "" {
				msg.messageID = strings.TrimSpace(unfold(f.Value))
			}
		case "references":
			if msg.references == "" {
				msg.references = strings.TrimSpace(unfold(f.Value))
			}
		}
	}
	return msg
}

func unfold(s string) string {
	return strings.NewReplacer("\r\n", "", "\n", "").Replace(s)
}

// env is the run's view for one recipient: the fields the filters before
// us added for it, on top as the stored copy will have them, then the
// message's own.
func (msg *message) env(m *delivery.Message, r delivery.Recipient, p delivery.Planned, now time.Time) sieve.Env {
	header := make([]sieve.Field, 0, len(p.Fields)+len(msg.own))
	for _, pf := range p.Fields {
		header = append(header, sieve.Field{Name: pf.Name, Value: pf.Value})
	}
	header = append(header, msg.own...)
	env := sieve.Env{
		Header:  header,
		Content: m.Body(),
		Envelope: sieve.Envelope{
			From: m.Envelope.From,
			To:   r.Account,
			Auth: m.Envelope.Client.User,
		},
		Now:       now,
		Spam:      spamFrom(p),
		Addresses: r.Addresses,
	}
	if len(r.Addresses) > 0 && !strings.EqualFold(r.Addresses[0], r.Account) {
		env.Envelope.OriginalTo = r.Addresses[0]
	}
	return env
}

// duplicates is sieve.Duplicates over the store, for one account.
type duplicates struct {
	s       Store
	account string
}

func (d duplicates) Seen(ctx context.Context, id string) (bool, error) {
	return d.s.DuplicateSeen(ctx, d.account, id)
}

// includes is sieve.Scripts over the store: the account's own scripts.
// Posthouse keeps no global scripts.
type includes struct {
	s       Store
	account string
}

func (i includes) Script(ctx context.Context, loc sieve.Location, name string) (*sieve.Script, error) {
	if loc == sieve.Global {
		return nil, sieve.ErrNoSuchScript
	}
	sc, err := i.s.Compiled(ctx, i.account, name)
	if errors.Is(err, sievestore.ErrNotFound) {
		return nil, sieve.ErrNoSuchScript
	}
	return sc, err
}

// mailboxes is sieve.Mailboxes over the mailstore, for one account.
type mailboxes struct {
	m       Mailboxes
	account string
}

func (mb mailboxes) MailboxExists(ctx context.Context, name string) (bool, error) {
	a, err := mb.m.Open(ctx, mb.account)
	if err != nil {
		return false, err
	}
	defer a.Close()
	_, err = a.Mailbox(ctx, name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, mailstore.ErrNoSuchMailbox), errors.Is(err, mailstore.ErrBadMailboxName):
		return false, nil
	}
	return false, err
}
