package imapd

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/posthouse/posthouse/mailstore"
)

// IMAP4rev1's \Recent (RFC 3501 §2.3.2): a message is recent in exactly one
// session, the first read-write selection told of it. The store keeps the
// mailbox's claim point (mailstore.Account.ClaimRecent), so a claim holds
// across sessions, processes and restarts; a session keeps the UIDs it
// claimed. IMAP4rev2 has no \Recent (RFC 9051 §2.3.2).

// flagRecent is the one flag no client stores; this session shows it.
const flagRecent imap.Flag = `\Recent`

// recentMode is how a selection treats \Recent.
type recentMode int

const (
	// recentNone: after ENABLE IMAP4rev2, no \Recent at all.
	recentNone recentMode = iota
	// recentClaim: SELECT claims the messages it is first told of.
	recentClaim
	// recentPeek: EXAMINE shows the messages nobody has claimed as
	// recent and claims none (RFC 3501 §6.3.2).
	recentPeek
)

func isRecentFlag(f imap.Flag) bool { return strings.EqualFold(string(f), string(flagRecent)) }

// claimRecent makes the messages below upTo that this selection has not
// looked at yet recent in it, if nobody claimed them first (in peek mode:
// if nobody has claimed them so far).
func (s *session) claimRecent(sel *selected, upTo imap.UID) error {
	if sel.recentMode == recentNone || upTo <= sel.claimedTo {
		return nil
	}
	ctx, cancel := s.op()
	defer cancel()
	var from imap.UID
	if sel.recentMode == recentClaim {
		var err error
		if from, err = s.acct.ClaimRecent(ctx, sel.mailbox.ID, upTo); err != nil {
			return err
		}
	} else {
		st, err := s.acct.Status(ctx, sel.mailbox.ID)
		if err != nil {
			return err
		}
		from = st.RecentUID
	}
	from = max(from, sel.claimedTo, 1)
	if from < upTo {
		sel.recent.AddRange(from, upTo-1)
	}
	sel.claimedTo = upTo
	return nil
}

// logClaimFailure logs a failed claim during a poll, which goes on without
// it: the messages are then simply not recent here. A mailbox deleted under
// the session, or a session ending, is no failure of ours.
func (s *session) logClaimFailure(err error) {
	if errors.Is(err, mailstore.ErrNoSuchMailbox) || errors.Is(err, mailstore.ErrClosed) ||
		errors.Is(err, context.Canceled) {
		return
	}
	s.log.Error("claim recent", "mailbox", s.sel.mailbox.Name, "err", err)
}

// pollRecent runs the session's poll: it claims the messages that have
// arrived before the updates go out (so a FETCH FLAGS among them shows
// \Recent), writes them, and follows the EXISTS of new messages with
// RECENT.
func (s *session) pollRecent(w *imapserver.UpdateWriter, allowExpunge bool) error {
	sel := s.sel
	if sel.recentMode == recentNone {
		return sel.tracker.Poll(w, allowExpunge)
	}
	st := sel.st
	st.mu.Lock()
	upTo := st.uidNext
	st.mu.Unlock()
	if err := s.claimRecent(sel, upTo); err != nil {
		s.logClaimFailure(err)
	}
	if err := sel.tracker.Poll(w, allowExpunge); err != nil {
		return err
	}

	st.mu.Lock()
	known := sel.knownLocked()
	var last imap.UID
	if known > 0 {
		last = st.uids[known-1]
	}
	st.mu.Unlock()
	if last < sel.knownTo {
		return nil // no new message told of
	}
	sel.knownTo = last + 1
	// Messages that arrived between the claim above and the poll.
	if err := s.claimRecent(sel, sel.knownTo); err != nil {
		s.logClaimFailure(err)
	}
	st.mu.Lock()
	n := sel.numRecentLocked()
	st.mu.Unlock()
	return w.WriteNumRecent(n)
}

// numRecentLocked counts the recent messages among those the client knows.
func (sel *selected) numRecentLocked() uint32 {
	uids := sel.st.uids[:sel.knownLocked()]
	n := 0
	for _, r := range sel.recent {
		lo := sort.Search(len(uids), func(i int) bool { return uids[i] >= r.Start })
		hi := sort.Search(len(uids), func(i int) bool { return uids[i] > r.Stop })
		n += max(hi-lo, 0)
	}
	return uint32(n)
}

// knownLocked is how many messages of the server view the client knows:
// the first ones, as new messages only ever go last.
func (sel *selected) knownLocked() int {
	n := len(sel.st.uids)
	for n > 0 && sel.tracker.EncodeSeqNum(uint32(n)) == 0 {
		n--
	}
	return n
}

// withRecent is flags with \Recent added when uid is recent in this
// session. flags is not modified: the tracker's updates share it.
func (sel *selected) withRecent(uid imap.UID, flags []imap.Flag) []imap.Flag {
	if !sel.recent.Contains(uid) {
		if flags == nil {
			return []imap.Flag{}
		}
		return flags
	}
	return append([]imap.Flag{flagRecent}, flags...)
}

// recentSet is the session's recent UIDs as a search key: noUID when there
// are none, so that it matches nothing.
func (sel *selected) recentSet() imap.UIDSet {
	if len(sel.recent) == 0 {
		return noUID
	}
	return slices.Clone(sel.recent)
}

// rewriteRecent replaces \Recent among the criteria's flags, which the
// store does not keep, by this session's recent UIDs: RECENT and NEW
// (RECENT UNSEEN) become a UID set, OLD (NOT RECENT) its negation.
func (sel *selected) rewriteRecent(c *imap.SearchCriteria) {
	if slices.ContainsFunc(c.Flag, isRecentFlag) {
		c.Flag = slices.DeleteFunc(c.Flag, isRecentFlag)
		c.UID = append(c.UID, sel.recentSet())
	}
	if slices.ContainsFunc(c.NotFlag, isRecentFlag) {
		c.NotFlag = slices.DeleteFunc(c.NotFlag, isRecentFlag)
		c.Not = append(c.Not, imap.SearchCriteria{UID: []imap.UIDSet{sel.recentSet()}})
	}
}
