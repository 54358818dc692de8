package pop3d

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// message is one entry of the maildrop snapshot.
type message struct {
	uid     imap.UID
	size    int64 // octets as stored (CRLF), as LIST reports them
	seen    bool  // \Seen in the store, or retrieved in this session
	setSeen bool  // retrieved here and not yet \Seen in the store
	deleted bool  // marked by DELE in this session
}

// maildrop is the session's view of INBOX, fixed at login (RFC 1939 §5:
// message numbers and sizes do not change during the session). Messages
// delivered later show up in the next session; messages expunged over IMAP
// meanwhile keep their number and get an -ERR when retrieved.
type maildrop struct {
	mailboxID   int64
	uidValidity uint32
	msgs        []message
	count       int   // messages not marked deleted
	size        int64 // their total size
}

// openMaildrop takes a snapshot of INBOX. The caller holds the maildrop
// lock.
func openMaildrop(ctx context.Context, acct Account) (*maildrop, error) {
	mb, err := acct.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		return nil, fmt.Errorf("looking up INBOX: %w", err)
	}
	snap, err := acct.Snapshot(ctx, mb.ID)
	if err != nil {
		return nil, fmt.Errorf("snapshot of INBOX: %w", err)
	}
	d := &maildrop{mailboxID: mb.ID, uidValidity: snap.Mailbox.UIDValidity}
	if d.uidValidity == 0 {
		d.uidValidity = mb.UIDValidity
	}
	if len(snap.Messages) == 0 {
		return d, nil
	}
	uids := make([]imap.UID, len(snap.Messages))
	for i, m := range snap.Messages {
		uids[i] = m.UID
	}
	// Fetch gives the sizes; a message expunged between the two calls is
	// simply not in its answer.
	infos, err := acct.Fetch(ctx, mb.ID, mailstore.UIDSetOf(uids), mailstore.FetchOptions{})
	if err != nil {
		return nil, fmt.Errorf("fetching INBOX sizes: %w", err)
	}
	d.msgs = make([]message, 0, len(infos))
	for _, in := range infos {
		d.msgs = append(d.msgs, message{
			uid:  in.UID,
			size: in.Size,
			seen: slices.Contains(in.Flags, imap.FlagSeen),
		})
		d.count++
		d.size += in.Size
	}
	return d, nil
}

// listing is the shape LIST and UIDL share (RFC 1939 §5, §7): with no
// argument, a multi-line reply of "n info" for each message not marked
// deleted; with one, that line for the message it names.
func (d *maildrop) listing(cmd command, text string, info func(m *message) string) reply {
	switch len(cmd.args) {
	case 0:
		lines := make([]string, 0, d.count)
		for i := range d.msgs {
			if !d.msgs[i].deleted {
				lines = append(lines, strconv.Itoa(i+1)+" "+info(&d.msgs[i]))
			}
		}
		return reply{ok: true, text: text, multi: true, lines: lines}
	case 1:
		m, r, ok := d.lookup(cmd.args[0])
		if !ok {
			return r
		}
		return okReply(cmd.args[0] + " " + info(m))
	}
	return replySyntax
}

// lookup resolves a message-number argument. It returns the message, or
// the reply for a bad, out-of-range or deleted number.
func (d *maildrop) lookup(arg string) (*message, reply, bool) {
	n, ok := parseMsgNum(arg)
	if !ok || n > len(d.msgs) {
		return nil, replyNoSuchMessage, false
	}
	m := &d.msgs[n-1]
	if m.deleted {
		return nil, replyMsgDeleted, false
	}
	return m, reply{}, true
}

// uidl is the message's unique-id listing (RFC 1939 §7): UIDVALIDITY and
// UID, so it is the same identity IMAP uses, stable across sessions and
// never reused. At most 21 printable octets.
func (d *maildrop) uidl(m *message) string {
	return strconv.FormatUint(uint64(d.uidValidity), 10) + "." + strconv.FormatUint(uint64(m.uid), 10)
}

func (d *maildrop) markDeleted(m *message) {
	m.deleted = true
	d.count--
	d.size -= m.size
}

// reset unmarks every deleted message (RSET).
func (d *maildrop) reset() {
	d.count, d.size = 0, 0
	for i := range d.msgs {
		d.msgs[i].deleted = false
		d.count++
		d.size += d.msgs[i].size
	}
}

func (d *maildrop) deletedCount() int { return len(d.msgs) - d.count }

// markSeen sets \Seen on the messages retrieved in this session, in one
// store call. With skipDeleted (at QUIT) messages about to be expunged
// are left out.
func (d *maildrop) markSeen(ctx context.Context, acct Account, skipDeleted bool) error {
	var uids []imap.UID
	for i := range d.msgs {
		if d.msgs[i].setSeen && !(skipDeleted && d.msgs[i].deleted) {
			uids = append(uids, d.msgs[i].uid)
		}
	}
	if len(uids) == 0 {
		return nil
	}
	if _, err := acct.StoreFlags(ctx, d.mailboxID, mailstore.UIDSetOf(uids), mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen}, 0); err != nil {
		return fmt.Errorf("setting \\Seen: %w", err)
	}
	for i := range d.msgs {
		d.msgs[i].setSeen = false
	}
	return nil
}

// expungeDeleted is the UPDATE state (RFC 1939 §6): flag the messages
// marked by DELE \Deleted and expunge exactly those. Messages another
// client flagged \Deleted are left for that client to expunge. It returns
// how many messages were removed; ones already gone are not an error.
func (d *maildrop) expungeDeleted(ctx context.Context, acct Account) (int, error) {
	var uids []imap.UID
	for i := range d.msgs {
		if d.msgs[i].deleted {
			uids = append(uids, d.msgs[i].uid)
		}
	}
	if len(uids) == 0 {
		return 0, nil
	}
	set := mailstore.UIDSetOf(uids)
	if _, err := acct.StoreFlags(ctx, d.mailboxID, set, mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
		return 0, fmt.Errorf("setting \\Deleted: %w", err)
	}
	gone, err := acct.Expunge(ctx, d.mailboxID, &set)
	if err != nil {
		return 0, fmt.Errorf("expunging: %w", err)
	}
	return len(gone), nil
}
