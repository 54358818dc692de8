package imapd

import (
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/posthouse/posthouse/mailstore"
)

// NOTIFY (RFC 5465), for the message events: MessageNew, MessageExpunge
// and FlagChange of mailboxes other than the selected one become
// unsolicited STATUS responses, written after each command and during
// IDLE. The selected mailbox keeps its usual updates (EXISTS, EXPUNGE,
// FETCH) whatever the event groups say. MailboxName, SubscriptionChange,
// AnnotationChange and the metadata events are refused with NO [BADEVENT].
// SUBTREE, MAILBOXES, SUBSCRIBED and INBOXES are resolved to mailboxes
// when NOTIFY runs; PERSONAL follows mailboxes created later too. A session
// keeps one pending event mask per mailbox, so what it holds between two
// writes is bounded by the account's mailboxes, however busy they are.

// notifyCaps are the capabilities NOTIFY adds.
var notifyCaps = []imap.Cap{imap.CapNotify}

// Events, as bits of a mask.
const (
	evNew uint8 = 1 << iota
	evExpunge
	evFlags
)

var errBadEvent = no("BADEVENT (MessageNew MessageExpunge FlagChange)", "Only message events are supported")

// notifyState is a session's NOTIFY SET.
type notifyState struct {
	stop func()        // the account watch
	wake chan struct{} // (buffered) an event is pending
	all  uint8         // events of every mailbox (PERSONAL)
	byID map[int64]uint8

	mu      sync.Mutex
	pending map[int64]uint8
}

func (n *notifyState) mask(id int64) uint8 { return n.all | n.byID[id] }

// event runs on the committing goroutine (Account.Watch): it only marks.
func (n *notifyState) event(e mailstore.Event) {
	var bit uint8
	switch e.Kind {
	case mailstore.EventAppend:
		bit = evNew
	case mailstore.EventExpunge:
		bit = evExpunge
	case mailstore.EventFlags:
		bit = evFlags
	default:
		return
	}
	if n.mask(e.MailboxID)&bit == 0 {
		return
	}
	n.mu.Lock()
	n.pending[e.MailboxID] |= bit
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (s *session) stopNotify() {
	if s.notify != nil {
		s.notify.stop()
		s.notify = nil
	}
}

func (s *session) Notify(w *imapserver.UpdateWriter, options *imap.NotifyOptions) error {
	s.stopNotify()
	if options.None {
		return nil
	}
	ctx, cancel := s.op()
	defer cancel()
	mbs, err := s.acct.ListMailboxes(ctx)
	if err != nil {
		return mapError(s.log, "notify", err, errSource)
	}
	n := &notifyState{wake: make(chan struct{}, 1), byID: map[int64]uint8{}, pending: map[int64]uint8{}}
	for _, g := range options.Groups {
		var mask uint8
		for _, ev := range g.Events {
			switch ev {
			case imap.NotifyMessageNew:
				mask |= evNew
			case imap.NotifyMessageExpunge:
				mask |= evExpunge
			case imap.NotifyFlagChange:
				mask |= evFlags
			default:
				return errBadEvent
			}
		}
		switch g.Filter {
		case imap.NotifySelected, imap.NotifySelectedDelayed:
			// The selected mailbox's updates go through its tracker.
		case imap.NotifyPersonal:
			n.all |= mask
		default:
			for _, mb := range mbs {
				if notifyMatches(g, mb) {
					n.byID[mb.ID] |= mask
				}
			}
		}
	}
	n.stop = s.acct.Watch(n.event)
	s.notify = n
	if !options.Status {
		return nil
	}
	// RFC 5465 §3.1: STATUS of every mailbox the groups name, now.
	for _, mb := range mbs {
		if m := n.mask(mb.ID); m != 0 && !s.isSelected(mb.ID) {
			if err := s.writeNotifyStatus(w, mb, m); err != nil {
				return err
			}
		}
	}
	return nil
}

// notifyMatches: does a group's filter (other than PERSONAL and SELECTED)
// name mb?
func notifyMatches(g imap.NotifyEventGroup, mb mailstore.Mailbox) bool {
	switch g.Filter {
	case imap.NotifyInboxes:
		return mb.Name == mailstore.Inbox
	case imap.NotifySubscribed:
		return mb.Subscribed
	case imap.NotifyMailboxes:
		return slices.ContainsFunc(g.Mailboxes, func(n string) bool { return canonName(n) == mb.Name })
	case imap.NotifySubtree:
		return slices.ContainsFunc(g.Mailboxes, func(n string) bool {
			n = canonName(n)
			return mb.Name == n || strings.HasPrefix(mb.Name, n+string(mailstore.Separator))
		})
	}
	return false
}

func (s *session) isSelected(id int64) bool { return s.sel != nil && s.sel.mailbox.ID == id }

// writeNotifyStatus writes the STATUS a mailbox's events call for: MESSAGES,
// UIDNEXT and UIDVALIDITY for new messages, MESSAGES for expunges,
// UIDVALIDITY and HIGHESTMODSEQ for flag changes (RFC 5465 §5.2-5.4, as
// Dovecot answers).
func (s *session) writeNotifyStatus(w *imapserver.UpdateWriter, mb mailstore.Mailbox, mask uint8) error {
	ctx, cancel := s.op()
	st, err := s.acct.Status(ctx, mb.ID)
	cancel()
	if err != nil {
		if errors.Is(err, mailstore.ErrNoSuchMailbox) {
			return nil // deleted meanwhile
		}
		return mapError(s.log, "notify", err, errSource)
	}
	o := &imap.StatusOptions{
		NumMessages:   mask&(evNew|evExpunge) != 0,
		UIDNext:       mask&evNew != 0,
		UIDValidity:   mask&(evNew|evFlags) != 0,
		HighestModSeq: mask&evFlags != 0,
	}
	return w.WriteStatus(s.statusData(mb.Name, mb, st, o), o)
}

// pollNotify writes the STATUS of the mailboxes with pending events.
func (s *session) pollNotify(w *imapserver.UpdateWriter) error {
	n := s.notify
	if n == nil {
		return nil
	}
	n.mu.Lock()
	if len(n.pending) == 0 {
		n.mu.Unlock()
		return nil
	}
	pending := n.pending
	n.pending = map[int64]uint8{}
	n.mu.Unlock()
	ctx, cancel := s.op()
	mbs, err := s.acct.ListMailboxes(ctx)
	cancel()
	if err != nil {
		return mapError(s.log, "notify", err, errSource)
	}
	for _, mb := range mbs {
		if m := pending[mb.ID]; m != 0 && !s.isSelected(mb.ID) {
			if err := s.writeNotifyStatus(w, mb, m); err != nil {
				return err
			}
		}
	}
	return nil
}
