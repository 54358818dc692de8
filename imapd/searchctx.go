package imapd

import (
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/posthouse/posthouse/mailstore"
)

// CONTEXT=SEARCH (RFC 5267 §4) and PARTIAL (RFC 9394) for SEARCH, and the
// live-result machinery CONTEXT=SORT shares (sortctx.go).
//
// A SEARCH or SORT with RETURN (UPDATE) leaves a live result: its criteria, made
// static (UIDs only, see staticCriteria), and the UIDs it holds. The
// mailbox state adds the UID of every new or changed message to the dirty
// set of each selection with live results; the session's poll searches
// the store for the dirty UIDs alone (criteria AND UID dirty), so the work
// is proportional to what changed, not to the mailbox. What entered or
// left a result goes out as ESEARCH ADDTO/REMOVEFROM after the poll's
// EXISTS and FETCH responses, in the client's current numbering; a message
// of a result that is expunged gets its REMOVEFROM just before its EXPUNGE
// (SessionTracker.SetExpungeFunc), while its sequence number still means
// it. Positions are 0 for SEARCH: an unsorted result has no order to
// place them in (RFC 5267 §4.3.2); a SORT result places them (sortctx.go).
// SEARCH and SORT results share the limit and CANCELUPDATE.

// maxLiveSearches bounds the live results of one session; a further
// RETURN (UPDATE) is answered once with NO [NOUPDATE] (RFC 5267 §4.3.1).
// Clients keep one or two (a virtual mailbox view).
const maxLiveSearches = 5

// liveSearch is one RETURN (UPDATE) result of SEARCH or SORT.
type liveSearch struct {
	tag      string
	kind     imapserver.NumKind
	criteria *imap.SearchCriteria // static: UIDs only
	result   imap.UIDSet          // the UIDs in it, as the client knows it
	// sorted is a SORT result's order (sortctx.go); nil for SEARCH.
	sorted *sortedResult
}

// searchUpdate is what a poll found for one live result: UIDs that now
// match and are not in it, and UIDs in it that no longer match. For a SORT
// result, keys holds the encoded sort key of each UID in add.
type searchUpdate struct {
	ls          *liveSearch
	add, remove []imap.UID
	keys        []string
}

// errTagInUse answers UPDATE with the tag of a live result (RFC 5267 §4.3:
// the server SHALL reject it with BAD).
var errTagInUse = bad(imap.ResponseCodeClientBug, "Tag reuse: a live result has this tag")

// checkLiveTag refuses a RETURN (UPDATE) whose tag names a live result:
// its updates could not be told apart.
func (sel *selected) checkLiveTag(tag string) error {
	if slices.ContainsFunc(sel.live, func(x *liveSearch) bool { return x.tag == tag }) {
		return errTagInUse
	}
	return nil
}

// addLiveSearch registers a live result (its tag checked by checkLiveTag);
// false when the session has maxLiveSearches already.
func (sel *selected) addLiveSearch(ls *liveSearch) bool {
	if len(sel.live) >= maxLiveSearches {
		return false
	}
	sel.live = append(sel.live, ls)
	// Only while a result is live: a run of expunges is otherwise one
	// VANISHED after ENABLE QRESYNC, which the func would split.
	sel.tracker.SetExpungeFunc(sel.beforeExpunge)
	st := sel.st
	st.mu.Lock()
	if st.watchers == nil {
		st.watchers = make(map[*selected]struct{})
	}
	st.watchers[sel] = struct{}{}
	st.mu.Unlock()
	return true
}

// cancelLiveSearches ends the live results named by tags (CANCELUPDATE).
func (sel *selected) cancelLiveSearches(tags []string) {
	sel.live = slices.DeleteFunc(sel.live, func(x *liveSearch) bool { return slices.Contains(tags, x.tag) })
	if len(sel.live) == 0 {
		sel.tracker.SetExpungeFunc(nil)
		sel.unwatch()
	}
}

// unwatch stops the mailbox state from collecting dirty UIDs for sel.
func (sel *selected) unwatch() {
	st := sel.st
	st.mu.Lock()
	delete(st.watchers, sel)
	sel.dirty = nil
	st.mu.Unlock()
}

// markDirtyLocked records uid as new or changed for every selection with
// live results.
func (st *mailboxState) markDirtyLocked(uid imap.UID) {
	for sel := range st.watchers {
		sel.dirty.AddNum(uid)
	}
}

// CancelUpdate ends live SEARCH results (RFC 5267 §4.3.5). Tags that name
// none are ignored: the result may have been refused with NOUPDATE.
func (s *session) CancelUpdate(tags []string) error {
	s.sel.cancelLiveSearches(tags)
	return nil
}

// evalLiveSearches takes the dirty UIDs and finds, with one store search
// per live result restricted to them, which messages entered or left each
// result. Expunged messages are left to the expunge hook.
func (s *session) evalLiveSearches() []searchUpdate {
	sel := s.sel
	if len(sel.live) == 0 {
		return nil
	}
	st := sel.st
	st.mu.Lock()
	dirty := sel.dirty
	sel.dirty = nil
	var present []imap.UID
	if len(dirty) > 0 {
		nums, _ := dirty.Nums()
		for _, uid := range nums {
			if _, ok := st.indexLocked(uid); ok {
				present = append(present, uid)
			}
		}
	}
	st.mu.Unlock()
	if len(present) == 0 {
		return nil
	}
	presentSet := mailstore.UIDSetOf(present)

	ups := make([]searchUpdate, 0, len(sel.live))
	for _, ls := range sel.live {
		crit := *ls.criteria
		crit.UID = append(slices.Clone(crit.UID), presentSet)
		ctx, cancel := s.op()
		matched, err := s.acct.Search(ctx, sel.mailbox.ID, &crit)
		cancel()
		if err != nil {
			// Try again at the next poll rather than report a wrong
			// change.
			s.log.Error("live search", "mailbox", sel.mailbox.Name, "err", err)
			st.mu.Lock()
			sel.dirty.AddSet(presentSet)
			st.mu.Unlock()
			continue
		}
		up := searchUpdate{ls: ls}
		j := 0
		for _, uid := range present {
			for j < len(matched) && matched[j] < uid {
				j++
			}
			now := j < len(matched) && matched[j] == uid
			was := ls.result.Contains(uid)
			switch {
			case now && !was:
				up.add = append(up.add, uid)
			case was && !now:
				up.remove = append(up.remove, uid)
			}
		}
		if up.ls.sorted != nil && len(up.add) > 0 {
			if err := s.sortKeysOf(&up); err != nil {
				s.log.Error("live sort", "mailbox", sel.mailbox.Name, "err", err)
				st.mu.Lock()
				sel.dirty.AddSet(presentSet)
				st.mu.Unlock()
				continue
			}
		}
		if len(up.add)+len(up.remove) > 0 {
			ups = append(ups, up)
		}
	}
	return ups
}

// writeLiveSearchUpdates writes, after the poll's own updates, the
// REMOVEFROM and ADDTO that evalLiveSearches found, numbered as the client
// now knows the messages. A new message the client has not been told of
// yet stays dirty for the next poll.
func (s *session) writeLiveSearchUpdates(w *imapserver.UpdateWriter, ups []searchUpdate) error {
	sel := s.sel
	st := sel.st
	for _, up := range ups {
		if up.ls.sorted != nil {
			if err := s.writeSortUpdates(w, up); err != nil {
				return err
			}
			continue
		}
		var removed, added []uint32
		var removedUIDs, addedUIDs []imap.UID
		st.mu.Lock()
		for _, uid := range up.remove {
			c := sel.clientSeqLocked(uid)
			if c == 0 || !up.ls.result.Contains(uid) {
				// Expunged meanwhile: the expunge hook tells (or told)
				// the client, just before the EXPUNGE.
				continue
			}
			up.ls.result = removeUID(up.ls.result, uid)
			removed = append(removed, c)
			removedUIDs = append(removedUIDs, uid)
		}
		for _, uid := range up.add {
			c := sel.clientSeqLocked(uid)
			if c == 0 {
				if _, ok := st.indexLocked(uid); ok {
					sel.dirty.AddNum(uid)
				}
				continue
			}
			up.ls.result.AddNum(uid)
			added = append(added, c)
			addedUIDs = append(addedUIDs, uid)
		}
		st.mu.Unlock()
		if err := writeSearchUpdate(w, up.ls, true, removed, removedUIDs); err != nil {
			return err
		}
		if err := writeSearchUpdate(w, up.ls, false, added, addedUIDs); err != nil {
			return err
		}
	}
	return nil
}

func writeSearchUpdate(w *imapserver.UpdateWriter, ls *liveSearch, removed bool, seqs []uint32, uids []imap.UID) error {
	if len(uids) == 0 {
		return nil
	}
	var set imap.NumSet
	if ls.kind == imapserver.NumKindUID {
		set = mailstore.UIDSetOf(uids)
	} else {
		var ss imap.SeqSet
		ss.AddNum(seqs...)
		set = ss
	}
	return w.WriteSearchUpdate(ls.tag, ls.kind, removed, 0, set)
}

// clientSeqLocked is uid's sequence number as the client knows it, 0 if
// it has none.
func (sel *selected) clientSeqLocked(uid imap.UID) uint32 {
	i, ok := sel.st.indexLocked(uid)
	if !ok {
		return 0
	}
	return sel.tracker.EncodeSeqNum(uint32(i + 1))
}

// beforeExpunge runs before each EXPUNGE the tracker writes: a message of
// a live result leaves it first, named while its number is still valid.
func (sel *selected) beforeExpunge(w *imapserver.UpdateWriter, seqNum uint32, uid imap.UID) error {
	if uid == 0 {
		return nil
	}
	for _, ls := range sel.live {
		if !ls.result.Contains(uid) {
			continue
		}
		ls.result = removeUID(ls.result, uid)
		var err error
		if ls.sorted != nil {
			err = ls.sorted.writeExpunged(w, ls, seqNum, uid)
		} else {
			err = writeSearchUpdate(w, ls, true, []uint32{seqNum}, []imap.UID{uid})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// partialResult cuts the ascending result nums to RFC 9394's range: 1-based
// positions from the start, or from the end when negative.
func partialResult(nums []uint32, r imap.SearchPartialRange) []uint32 {
	n := int64(len(nums))
	var lo, hi int64 // 0-based, inclusive
	if r.Start > 0 {
		lo, hi = int64(r.Start)-1, int64(r.Stop)-1
	} else {
		lo, hi = n+int64(r.Stop), n+int64(r.Start)
	}
	lo = max(lo, 0)
	hi = min(hi, n-1)
	if lo > hi {
		return nil
	}
	return nums[lo : hi+1]
}

// removeUID takes uid out of set, splitting the range that holds it.
func removeUID(set imap.UIDSet, uid imap.UID) imap.UIDSet {
	for i, r := range set {
		if r.Start == 0 || r.Stop == 0 {
			continue // results hold no "*"
		}
		lo, hi := min(r.Start, r.Stop), max(r.Start, r.Stop)
		if uid < lo || uid > hi {
			continue
		}
		var repl []imap.UIDRange
		if uid > lo {
			repl = append(repl, imap.UIDRange{Start: lo, Stop: uid - 1})
		}
		if uid < hi {
			repl = append(repl, imap.UIDRange{Start: uid + 1, Stop: hi})
		}
		return slices.Replace(set, i, i+1, repl...)
	}
	return set
}
