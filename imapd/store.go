package imapd

import (
	"context"

	"github.com/posthouse/posthouse/mailstore"
)

// Store is what imapd needs of the mailstore: the account of the user who
// logged in, and a handle per selected mailbox for its events.
//
// An IMAP session uses most of an account: every method of
// mailstore.Account except Name, Deliver and LockMaildrop (twenty-three
// of twenty-six; Usage checks a MULTIAPPEND against the quota). So imapd
// takes mailstore.Account whole rather than restating it, and this is the
// one place that says so. Tests run on the
// real backend (mailstore/maildir, proven by mailstore/storetest); a test
// that needs a store failure wraps it and overrides one method.
type Store interface {
	Open(ctx context.Context, name string) (mailstore.Account, error)
}
