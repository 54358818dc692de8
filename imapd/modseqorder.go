package imapd

import (
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/posthouse/posthouse/mailstore"
)

// Changes other sessions make to a message's flags are queued for this
// session as FETCH FLAGS updates and written after its current command's
// responses (SessionTracker.Poll). When the command itself showed the
// message (FETCH, STORE, QRESYNC's SELECT), it showed the state as read
// from the store, which is at least as new as every queued change: a
// change is queued on the committing goroutine before any reader can see
// a later commit. Writing the queued older changes after it would take a
// client back to stale flags and, after CONDSTORE, show the message's
// MODSEQ going down (RFC 7162 §3.1; imaptest's "MODSEQ dropped").
// reviseQueued therefore rewrites the queue once the responses are out:
//
//   - shown with its flags: every queued update for the message at or
//     below the shown modseq is dropped (the client holds a newer state);
//   - shown by modseq alone (FETCH (MODSEQ), STORE .SILENT with CONDSTORE,
//     or a STORE .SILENT whose result the client was not told): the first
//     such update becomes the shown state (flags and modseq), so the
//     client still learns of the other session's change, and later ones
//     up to that modseq are dropped.
//
// Updates newer than what was shown stay as they are. A session's own
// STORE events never reach its queue (inflightStore).
//
// The n messages shown are at(0) … at(n-1); they are looked at only if
// the queue holds a FETCH FLAGS update.
func (sel *selected) reviseQueued(n int, at func(i int) mailstore.FlagUpdate, withFlags bool) {
	if n == 0 {
		return
	}
	var byUID map[imap.UID]mailstore.FlagUpdate // built on the first queued update
	var replaced map[imap.UID]bool
	sel.tracker.ReviseFlagUpdates(func(uid imap.UID, modSeq uint64) ([]imap.Flag, uint64, bool) {
		if byUID == nil {
			byUID = make(map[imap.UID]mailstore.FlagUpdate, n)
			for i := 0; i < n; i++ {
				u := at(i)
				byUID[u.UID] = u
			}
		}
		u, ok := byUID[uid]
		if !ok || modSeq > u.ModSeq {
			return nil, 0, false
		}
		if withFlags {
			return nil, 0, true
		}
		if replaced[uid] {
			return nil, 0, true
		}
		if replaced == nil {
			replaced = map[imap.UID]bool{}
		}
		replaced[uid] = true
		flags := u.Flags
		if flags == nil {
			flags = []imap.Flag{}
		}
		return flags, u.ModSeq, false
	})
}

// shownRows is reviseQueued for the index rows a FETCH wrote.
func (sel *selected) shownRows(rows []mailstore.MessageInfo, withFlags bool) {
	sel.reviseQueued(len(rows), func(i int) mailstore.FlagUpdate {
		return mailstore.FlagUpdate{UID: rows[i].UID, ModSeq: rows[i].ModSeq, Flags: rows[i].Flags}
	}, withFlags)
}

// shownStored is reviseQueued for what a STORE changed.
func (sel *selected) shownStored(res mailstore.StoreResult, withFlags bool) {
	sel.reviseQueued(len(res.Updated), func(i int) mailstore.FlagUpdate { return res.Updated[i] }, withFlags)
}

// announceKeywords writes, before a FETCH shows rows with a keyword, the
// FLAGS update queued for this session, if any: a keyword another session
// brought into the mailbox is announced by it (RFC 3501 §7.2.6), and Poll
// would write it only after the command's responses. A keyword the
// mailbox's state does not know yet is added to it first: the FETCH read a
// commit whose event had not reached the state (readers see a commit before
// its writer publishes the event; imaptest's stress caught the FETCH
// between the two), or another process wrote it.
func (sel *selected) announceKeywords(w *imapserver.FetchWriter, rows []mailstore.MessageInfo) error {
	var kws []imap.Flag // the distinct keywords shown, usually none or a few
	for i := range rows {
		for _, f := range rows[i].Flags {
			if !strings.HasPrefix(string(f), "\\") && !slices.Contains(kws, f) {
				kws = append(kws, f)
			}
		}
	}
	if len(kws) == 0 {
		return nil
	}
	st := sel.st
	st.mu.Lock()
	if st.addKeywordsLocked(kws) {
		st.tracker.QueueMailboxFlags(st.flagsLocked())
	}
	st.mu.Unlock()
	if flags := sel.tracker.TakeMailboxFlags(); flags != nil {
		return w.WriteMailboxFlags(flags)
	}
	return nil
}
