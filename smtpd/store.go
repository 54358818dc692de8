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

// MailStore serves s's accounts as this package's Account.
func MailStore(s mailstore.Store) Store { return mailstore.Narrow[Account](s) }
