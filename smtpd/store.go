package smtpd

import (
	"context"

	"github.com/posthouse/posthouse/mailstore"
)

// Store is what smtpd needs of the mailstore: the recipient's account, to
// read its Usage at RCPT (the copies themselves go through Delivery).
// MailStore adapts a mailstore.Store to it.
type Store interface {
	// Open returns a handle on the account; see mailstore.Store.Open.
	Open(ctx context.Context, name string) (Account, error)
}

// Account is what the RCPT quota check reads. Each method keeps the
// contract of the mailstore.Account method of the same name.
type Account interface {
	Usage(ctx context.Context) (used, limit int64, err error)
	Close() error
}

// A mailstore.Account has every method smtpd uses.
var _ Account = mailstore.Account(nil)

// MailStore adapts a mailstore.Store to Store. Go does not let a method
// returning mailstore.Account stand for one returning Account, so the
// adapter does the conversion.
func MailStore(s mailstore.Store) Store { return mailStore{s} }

type mailStore struct{ s mailstore.Store }

func (m mailStore) Open(ctx context.Context, name string) (Account, error) {
	a, err := m.s.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return a, nil
}
