package pop3d

import (
	"context"
	"io"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// Store is what pop3d needs of the mailstore: the account of the user who
// logged in. MailStore adapts a mailstore.Store to it; tests pass a fake.
type Store interface {
	// Open returns a handle on the account named by auth; see
	// mailstore.Store.Open.
	Open(ctx context.Context, name string) (Account, error)
}

// Account is what a POP3 session does with an account: lock the maildrop,
// snapshot INBOX, read messages, and at the end mark \Seen and expunge
// what DELE marked. Each method keeps the contract of the mailstore.Account
// method of the same name.
type Account interface {
	Close() error
	Mailbox(ctx context.Context, name string) (mailstore.Mailbox, error)
	Snapshot(ctx context.Context, mailboxID int64) (mailstore.Snapshot, error)
	Fetch(ctx context.Context, mailboxID int64, uids imap.UIDSet, opts mailstore.FetchOptions) ([]mailstore.MessageInfo, error)
	OpenMessage(ctx context.Context, mailboxID int64, uid imap.UID) (io.ReadSeekCloser, int64, error)
	StoreFlags(ctx context.Context, mailboxID int64, uids imap.UIDSet, op mailstore.FlagOp, flags []imap.Flag, unchangedSince uint64) (mailstore.StoreResult, error)
	Expunge(ctx context.Context, mailboxID int64, uids *imap.UIDSet) ([]imap.UID, error)
	LockMaildrop(ctx context.Context) (unlock func(), err error)
}

// A mailstore.Account has every method a POP3 session uses.
var _ Account = mailstore.Account(nil)

// MailStore serves s's accounts as this package's Account.
func MailStore(s mailstore.Store) Store { return mailstore.Narrow[Account](s) }
