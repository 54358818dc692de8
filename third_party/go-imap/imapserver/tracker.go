package imapserver

import (
	"fmt"
	"sync"

	"github.com/emersion/go-imap/v2"
)

// MailboxTracker tracks the state of a mailbox.
//
// A mailbox can have multiple sessions listening for updates. Each session has
// its own view of the mailbox, because IMAP clients asynchronously receive
// mailbox updates.
type MailboxTracker struct {
	mutex       sync.Mutex
	numMessages uint32
	sessions    map[*SessionTracker]struct{}
}

// NewMailboxTracker creates a new mailbox tracker.
func NewMailboxTracker(numMessages uint32) *MailboxTracker {
	return &MailboxTracker{
		numMessages: numMessages,
		sessions:    make(map[*SessionTracker]struct{}),
	}
}

// NewSession creates a new session tracker for the mailbox.
//
// The caller must call SessionTracker.Close once they are done with the
// session.
func (t *MailboxTracker) NewSession() *SessionTracker {
	st := &SessionTracker{mailbox: t}
	t.mutex.Lock()
	t.sessions[st] = struct{}{}
	st.numMessages = t.numMessages
	t.mutex.Unlock()
	return st
}

func (t *MailboxTracker) queueUpdate(update *trackerUpdate, source *SessionTracker) {
	t.mutex.Lock()
	defer t.mutex.Unlock()

	if update.expunge != 0 && update.expunge > t.numMessages {
		panic(fmt.Errorf("imapserver: expunge sequence number (%v) out of range (%v messages in mailbox)", update.expunge, t.numMessages))
	}
	if update.numMessages != 0 && update.numMessages < t.numMessages {
		panic(fmt.Errorf("imapserver: cannot decrease mailbox number of messages from %v to %v", t.numMessages, update.numMessages))
	}

	for st := range t.sessions {
		if source != nil && st == source {
			continue
		}
		st.queueUpdate(update)
	}

	switch {
	case update.expunge != 0:
		t.numMessages--
	case update.numMessages != 0:
		t.numMessages = update.numMessages
	}
}

// QueueExpunge queues a new EXPUNGE update.
func (t *MailboxTracker) QueueExpunge(seqNum uint32) {
	if seqNum == 0 {
		panic("imapserver: invalid expunge message sequence number")
	}
	t.queueUpdate(&trackerUpdate{expunge: seqNum}, nil)
}

// QueueExpungeUID is QueueExpunge for a message whose UID is known: a
// session's SetExpungeFunc gets it. (Posthouse patch.)
func (t *MailboxTracker) QueueExpungeUID(seqNum uint32, uid imap.UID) {
	if seqNum == 0 {
		panic("imapserver: invalid expunge message sequence number")
	}
	t.queueUpdate(&trackerUpdate{expunge: seqNum, expungeUID: uid}, nil)
}

// QueueNumMessages queues a new EXISTS update.
func (t *MailboxTracker) QueueNumMessages(n uint32) {
	// TODO: merge consecutive NumMessages updates
	t.queueUpdate(&trackerUpdate{numMessages: n}, nil)
}

// QueueMailboxFlags queues a new FLAGS update.
func (t *MailboxTracker) QueueMailboxFlags(flags []imap.Flag) {
	if flags == nil {
		flags = []imap.Flag{}
	}
	t.queueUpdate(&trackerUpdate{mailboxFlags: flags}, nil)
}

// QueueMailboxFlagsFrom queues a new FLAGS update caused by source's own
// command (a STORE that brought a new keyword), which announces it itself
// with FetchWriter.WriteMailboxFlags: the update is not dispatched to it.
func (t *MailboxTracker) QueueMailboxFlagsFrom(flags []imap.Flag, source *SessionTracker) {
	if flags == nil {
		flags = []imap.Flag{}
	}
	t.queueUpdate(&trackerUpdate{mailboxFlags: flags}, source)
}

// QueueMessageFlags queues a new FETCH FLAGS update.
//
// If source is not nil, the update won't be dispatched to it.
func (t *MailboxTracker) QueueMessageFlags(seqNum uint32, uid imap.UID, flags []imap.Flag, source *SessionTracker) {
	t.queueUpdate(&trackerUpdate{fetch: &trackerUpdateFetch{
		seqNum: seqNum,
		uid:    uid,
		flags:  flags,
	}}, source)
}

type trackerUpdate struct {
	expunge      uint32
	expungeUID   imap.UID // Posthouse patch: from QueueExpungeUID
	numMessages  uint32
	mailboxFlags []imap.Flag
	fetch        *trackerUpdateFetch
}

type trackerUpdateFetch struct {
	seqNum uint32
	uid    imap.UID
	flags  []imap.Flag
	modSeq uint64 // Posthouse patch: 0 if unknown
}

// QueueMessageFlagsModSeq is QueueMessageFlags with the message's new
// modseq, which sessions that enabled CONDSTORE are told in the FETCH
// (RFC 7162 §3.1.4.1). (Posthouse patch.)
func (t *MailboxTracker) QueueMessageFlagsModSeq(seqNum uint32, uid imap.UID, flags []imap.Flag, modSeq uint64, source *SessionTracker) {
	t.queueUpdate(&trackerUpdate{fetch: &trackerUpdateFetch{
		seqNum: seqNum,
		uid:    uid,
		flags:  flags,
		modSeq: modSeq,
	}}, source)
}

// SessionTracker tracks the state of a mailbox for an IMAP client.
type SessionTracker struct {
	mailbox *MailboxTracker

	mutex   sync.Mutex
	queue   []trackerUpdate
	updates chan<- struct{}
	// numMessages is the number of messages the client knows of: the
	// mailbox's count when the session started (what SELECT reports),
	// then every EXISTS and EXPUNGE handed to Poll (Posthouse patch).
	numMessages uint32
	// messageFlags, if set, gives the flags of each FETCH FLAGS update
	// this session writes (Posthouse patch).
	messageFlags func(uid imap.UID, flags []imap.Flag) []imap.Flag
	// beforeExpunge, if set, runs before each EXPUNGE Poll writes
	// (Posthouse patch).
	beforeExpunge func(w *UpdateWriter, seqNum uint32, uid imap.UID) error
}

// SetExpungeFunc makes Poll (and Idle) call fn just before writing each
// EXPUNGE, with the sequence number it expunges (as the client knows it at
// that moment) and the message's UID (zero unless queued with
// QueueExpungeUID). A server writes there what must precede the EXPUNGE,
// such as RFC 5267's ESEARCH REMOVEFROM for a message in a live SEARCH
// result, whose sequence number is gone once the EXPUNGE is out. fn runs
// on the goroutine calling Poll, without the tracker's lock. (Posthouse
// patch.)
func (t *SessionTracker) SetExpungeFunc(fn func(w *UpdateWriter, seqNum uint32, uid imap.UID) error) {
	t.mutex.Lock()
	t.beforeExpunge = fn
	t.mutex.Unlock()
}

// SetMessageFlagsFunc makes Poll (and Idle) write, for each FETCH FLAGS
// update, the flags fn returns instead of the mailbox's. A server adds
// the flags only this session has this way, such as IMAP4rev1's \Recent
// (RFC 3501 §2.3.2), which an update shared by every session of the
// mailbox cannot carry. fn runs on the goroutine calling Poll, without the
// tracker's lock; it must not modify flags, which other sessions share.
// (Posthouse patch.)
func (t *SessionTracker) SetMessageFlagsFunc(fn func(uid imap.UID, flags []imap.Flag) []imap.Flag) {
	t.mutex.Lock()
	t.messageFlags = fn
	t.mutex.Unlock()
}

// ReviseFlagUpdates lets a session revise the FETCH FLAGS updates queued
// for it once its own command has shown (or changed) messages in a state
// newer than a queued update's: fn is called, in queue order, with the
// UID and modseq of each queued FETCH FLAGS update and returns drop to
// remove it, or non-nil flags to write those flags with modSeq instead.
// Without it a FETCH or STORE that wrote a message at modseq n is followed
// by the older changes queued before it, and a CONDSTORE client sees the
// message's MODSEQ go down (RFC 7162 §3.1: a modseq only grows). Other
// sessions' queues are untouched: updates are shared, so a revised one is
// a copy. FLAGS updates queued after the first replaced update move
// ahead of it, as its flags may hold a keyword they announce. fn runs
// under the tracker's lock and must not call it. (Posthouse patch.)
func (t *SessionTracker) ReviseFlagUpdates(fn func(uid imap.UID, modSeq uint64) (flags []imap.Flag, newModSeq uint64, drop bool)) {
	t.mutex.Lock()
	defer t.mutex.Unlock()
	out := t.queue[:0]
	firstReplaced := -1
	for _, update := range t.queue {
		if f := update.fetch; f != nil {
			flags, modSeq, drop := fn(f.uid, f.modSeq)
			if drop {
				continue
			}
			if flags != nil {
				update.fetch = &trackerUpdateFetch{seqNum: f.seqNum, uid: f.uid, flags: flags, modSeq: modSeq}
				if firstReplaced < 0 {
					firstReplaced = len(out)
				}
			}
		}
		out = append(out, update)
	}
	for i := len(out); i < len(t.queue); i++ {
		t.queue[i] = trackerUpdate{}
	}
	t.queue = out
	// A replaced update carries newer flags, which may hold a keyword
	// that a FLAGS update queued after it announces: FLAGS updates move
	// ahead of the first replaced one (they name no message, so moving
	// them changes no sequence number).
	if firstReplaced >= 0 {
		var flagsUpdates, rest []trackerUpdate
		for _, update := range out[firstReplaced:] {
			if update.mailboxFlags != nil {
				flagsUpdates = append(flagsUpdates, update)
			} else {
				rest = append(rest, update)
			}
		}
		if len(flagsUpdates) > 0 {
			n := copy(out[firstReplaced:], flagsUpdates)
			copy(out[firstReplaced+n:], rest)
		}
	}
}

// TakeMailboxFlags removes the FLAGS updates queued for the session and
// returns the flags of the last one (nil if none), for a command about to
// show flags to write first: a FETCH showing a keyword that another
// session brought into the mailbox must not precede the FLAGS announcing
// it (RFC 3501 §7.2.6), which Poll would write only after the command's
// responses. FLAGS updates name no message, so taking them changes no
// sequence number. (Posthouse patch.)
func (t *SessionTracker) TakeMailboxFlags() []imap.Flag {
	t.mutex.Lock()
	defer t.mutex.Unlock()
	var last []imap.Flag
	out := t.queue[:0]
	for _, update := range t.queue {
		if update.mailboxFlags != nil {
			last = update.mailboxFlags
			continue
		}
		out = append(out, update)
	}
	for i := len(out); i < len(t.queue); i++ {
		t.queue[i] = trackerUpdate{}
	}
	t.queue = out
	return last
}

// NumMessages returns the number of messages in the mailbox as the client
// knows it, which is the highest valid message sequence number in its
// commands (RFC 9051 §9, seq-number). (Posthouse patch.)
func (t *SessionTracker) NumMessages() uint32 {
	t.mutex.Lock()
	defer t.mutex.Unlock()
	return t.numMessages
}

// Close unregisters the session.
func (t *SessionTracker) Close() {
	t.mailbox.mutex.Lock()
	delete(t.mailbox.sessions, t)
	t.mailbox.mutex.Unlock()
	t.mailbox = nil
}

func (t *SessionTracker) queueUpdate(update *trackerUpdate) {
	var updates chan<- struct{}
	t.mutex.Lock()
	t.queue = append(t.queue, *update)
	updates = t.updates
	t.mutex.Unlock()

	if updates != nil {
		select {
		case updates <- struct{}{}:
			// we notified SessionTracker.Idle about the update
		default:
			// skip the update
		}
	}
}

// Poll dequeues pending mailbox updates for this session.
func (t *SessionTracker) Poll(w *UpdateWriter, allowExpunge bool) error {
	var updates []trackerUpdate
	t.mutex.Lock()
	if allowExpunge {
		updates = t.queue
		t.queue = nil
	} else {
		stopIndex := -1
		for i, update := range t.queue {
			if update.expunge != 0 {
				stopIndex = i
				break
			}
			updates = append(updates, update)
		}
		if stopIndex >= 0 {
			t.queue = t.queue[stopIndex:]
		} else {
			t.queue = nil
		}
	}
	for _, update := range updates {
		switch {
		case update.expunge != 0:
			t.numMessages--
		case update.numMessages != 0:
			t.numMessages = update.numMessages
		}
	}
	messageFlags := t.messageFlags
	beforeExpunge := t.beforeExpunge
	t.mutex.Unlock()

	// Posthouse patch: after ENABLE QRESYNC, a run of expunges whose UIDs
	// are known is one VANISHED response (RFC 7162 §3.2.10). What the
	// expunge func writes about a message must come before the message
	// goes, so a pending run is flushed before each call.
	vanished := w.conn.EnabledCaps().Has(imap.CapQResync)
	var run imap.UIDSet
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		err := w.WriteVanished(run)
		run = nil
		return err
	}
	for i, update := range updates {
		var err error
		switch {
		case update.expunge != 0:
			if beforeExpunge != nil {
				if err := flush(); err != nil {
					return err
				}
				if err := beforeExpunge(w, update.expunge, update.expungeUID); err != nil {
					return err
				}
			}
			if vanished && update.expungeUID != 0 {
				run.AddNum(update.expungeUID)
				if i+1 == len(updates) || updates[i+1].expunge == 0 || updates[i+1].expungeUID == 0 {
					err = flush()
				}
			} else {
				err = w.WriteExpunge(update.expunge)
			}
		case update.numMessages != 0:
			err = w.WriteNumMessages(update.numMessages)
		case update.mailboxFlags != nil:
			err = w.WriteMailboxFlags(update.mailboxFlags)
		case update.fetch != nil:
			flags := update.fetch.flags
			if messageFlags != nil {
				flags = messageFlags(update.fetch.uid, flags)
			}
			err = w.WriteMessageFlagsModSeq(update.fetch.seqNum, update.fetch.uid, flags, update.fetch.modSeq)
		default:
			panic(fmt.Errorf("imapserver: unknown tracker update %#v", update))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Idle continuously writes mailbox updates.
//
// When the stop channel is closed, it returns.
//
// Idle cannot be invoked concurrently from two separate goroutines.
func (t *SessionTracker) Idle(w *UpdateWriter, stop <-chan struct{}) error {
	updates := make(chan struct{}, 64)
	t.mutex.Lock()
	ok := t.updates == nil
	if ok {
		t.updates = updates
	}
	// Posthouse patch: updates queued before Idle registered (say, between
	// the "+ idling" line and this call) sent no notification; write them
	// now instead of waiting for the next change.
	pending := len(t.queue) > 0
	t.mutex.Unlock()
	if !ok {
		return fmt.Errorf("imapserver: only a single SessionTracker.Idle call is allowed at a time")
	}

	defer func() {
		t.mutex.Lock()
		t.updates = nil
		t.mutex.Unlock()
	}()

	if pending {
		if err := t.Poll(w, true); err != nil {
			return err
		}
	}

	for {
		select {
		case <-updates:
			if err := t.Poll(w, true); err != nil {
				return err
			}
		case <-stop:
			return nil
		}
	}
}

// DecodeSeqNum converts a message sequence number from the client view to the
// server view.
//
// Zero is returned if the message doesn't exist from the server point-of-view.
func (t *SessionTracker) DecodeSeqNum(seqNum uint32) uint32 {
	if seqNum == 0 {
		return 0
	}

	t.mutex.Lock()
	defer t.mutex.Unlock()

	// Posthouse patch: a number beyond what the client was told names no
	// message, even if the mailbox has grown since.
	if seqNum > t.numMessages {
		return 0
	}

	for _, update := range t.queue {
		if update.expunge == 0 {
			continue
		}
		if seqNum == update.expunge {
			return 0
		} else if seqNum > update.expunge {
			seqNum--
		}
	}

	if seqNum > t.mailbox.numMessages {
		return 0
	}

	return seqNum
}

// EncodeSeqNum converts a message sequence number from the server view to the
// client view.
//
// Zero is returned if the message doesn't exist from the client point-of-view.
func (t *SessionTracker) EncodeSeqNum(seqNum uint32) uint32 {
	if seqNum == 0 {
		return 0
	}

	t.mutex.Lock()
	defer t.mutex.Unlock()

	if seqNum > t.mailbox.numMessages {
		return 0
	}

	for i := len(t.queue) - 1; i >= 0; i-- {
		update := t.queue[i]
		// TODO: this doesn't handle increments > 1
		if update.numMessages != 0 && seqNum == update.numMessages {
			return 0
		}
		if update.expunge != 0 && seqNum >= update.expunge {
			seqNum++
		}
	}
	// Posthouse patch: a message added since the client's last EXISTS has
	// no number for it yet, however many were added (the check above only
	// catches the last of each EXISTS).
	if seqNum > t.numMessages {
		return 0
	}
	return seqNum
}
