package imapd

import (
	"sort"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/posthouse/posthouse/mailstore"
)

// CONDSTORE and QRESYNC (RFC 7162). Every mailbox has modseqs (the store
// gives each change a new one), so NOMODSEQ is never sent. The library
// (patched) parses the commands and writes the responses; here the
// session answers from the store: Fetch with ChangedSince and Expunged
// are served by indexes, so a resync costs what changed, not the mailbox.

// HighestModSeq is the selected mailbox's HIGHESTMODSEQ as this process
// has applied it, for the first CONDSTORE-enabling command (RFC 7162 §3.1).
func (s *session) HighestModSeq() (uint64, error) {
	if s.sel == nil {
		return 0, nil
	}
	st := s.sel.st
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.modseq, nil
}

// ResyncSelect answers SELECT/EXAMINE (QRESYNC (…)) after the mailbox is
// selected (RFC 7162 §3.2.5): VANISHED (EARLIER) for the client's UIDs
// expunged since its modseq, then FETCH (UID FLAGS MODSEQ) for the
// messages changed since. A different UIDVALIDITY means the client's
// cache is void: nothing is sent, and it resyncs in full. seq-match-data
// only helps a server that forgot expunges; the store keeps them all.
func (s *session) ResyncSelect(w *imapserver.FetchWriter, q *imap.SelectQResync) error {
	sel := s.sel
	st := sel.st
	st.mu.Lock()
	uidValidity, uidNext := st.uidValidity, st.uidNext
	st.mu.Unlock()
	if uidValidity == 0 {
		uidValidity = sel.mailbox.UIDValidity
	}
	if q.UIDValidity != uidValidity {
		return nil
	}
	ctx, cancel := s.op()
	gone, err := s.acct.Expunged(ctx, sel.mailbox.ID, q.ModSeq)
	cancel()
	if err != nil {
		return mapError(s.log, "select", err, errSource)
	}
	if q.KnownUIDs != nil {
		gone = intersectUIDs(gone, q.KnownUIDs, uidNext-1)
	}
	if err := w.WriteVanished(gone); err != nil {
		return err
	}
	ctx, cancel = s.op()
	rows, err := s.acct.Fetch(ctx, sel.mailbox.ID, imap.UIDSet{{Start: 1, Stop: 0}}, mailstore.FetchOptions{ChangedSince: q.ModSeq})
	cancel()
	if err != nil {
		return mapError(s.log, "select", err, errSource)
	}
	for i := range rows {
		seq := sel.seqOf(rows[i].UID)
		if seq == 0 {
			continue // arrived after SELECT's EXISTS: its own update follows
		}
		rw := w.CreateMessage(seq)
		rw.WriteUID(rows[i].UID)
		rw.WriteFlags(sel.withRecent(rows[i].UID, rows[i].Flags))
		rw.WriteModSeq(rows[i].ModSeq)
		if err := rw.Close(); err != nil {
			return err
		}
	}
	sel.shownRows(rows, true)
	return nil
}

// seqOf is uid's sequence number as the client knows it, 0 if none.
func (sel *selected) seqOf(uid imap.UID) uint32 {
	st := sel.st
	st.mu.Lock()
	defer st.mu.Unlock()
	i, ok := st.indexLocked(uid)
	if !ok {
		return 0
	}
	return sel.tracker.EncodeSeqNum(uint32(i + 1))
}

// writeVanished writes UID FETCH (CHANGEDSINCE n VANISHED)'s VANISHED
// (EARLIER): the UIDs of the command's set expunged since n (RFC 7162
// §3.2.6).
func (s *session) writeVanished(w *imapserver.FetchWriter, numSet imap.NumSet, since uint64) error {
	uids, ok := numSet.(imap.UIDSet)
	if !ok {
		return nil // the library allows VANISHED in UID FETCH only
	}
	sel := s.sel
	if imap.IsSearchRes(numSet) {
		uids = sel.searchRes
	}
	ctx, cancel := s.op()
	gone, err := s.acct.Expunged(ctx, sel.mailbox.ID, since)
	cancel()
	if err != nil {
		return mapError(s.log, "fetch", err, errSource)
	}
	st := sel.st
	st.mu.Lock()
	maxUID := st.uidNext - 1
	st.mu.Unlock()
	return w.WriteVanished(intersectUIDs(gone, uids, maxUID))
}

// changedTargets keeps the targets whose modseq is above since
// (CHANGEDSINCE), asking the store for the changes since in one call.
func (s *session) changedTargets(targets []target, since uint64) ([]target, error) {
	ctx, cancel := s.op()
	rows, err := s.acct.Fetch(ctx, s.sel.mailbox.ID, uidSetOf(targets), mailstore.FetchOptions{ChangedSince: since})
	cancel()
	if err != nil {
		return nil, mapError(s.log, "fetch", err, errSource)
	}
	out := targets[:0]
	j := 0
	for _, t := range targets {
		for j < len(rows) && rows[j].UID < t.uid {
			j++
		}
		if j < len(rows) && rows[j].UID == t.uid {
			out = append(out, t)
		}
	}
	return out, nil
}

// intersectUIDs is the UIDs of a in b; '*' in b stands for maxUID.
func intersectUIDs(a, b imap.UIDSet, maxUID imap.UID) imap.UIDSet {
	type rng struct{ lo, hi imap.UID }
	var bs []rng
	for _, r := range b {
		lo, hi := mailstore.RangeBounds(r.Start, r.Stop, maxUID)
		if hi >= lo && hi > 0 {
			bs = append(bs, rng{max(lo, 1), hi})
		}
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].lo < bs[j].lo })
	var out imap.UIDSet
	for _, r := range a {
		lo, hi := r.Start, r.Stop
		if hi == 0 {
			hi = maxUID
		}
		for _, x := range bs {
			if x.lo > hi {
				break
			}
			if l, h := max(lo, x.lo), min(hi, x.hi); l <= h {
				out.AddRange(l, h)
			}
		}
	}
	return out
}

// modifiedError is STORE (UNCHANGEDSINCE)'s "OK [MODIFIED set]", in
// sequence numbers or UIDs as the command was given (RFC 7162 §3.1.3).
func modifiedError(targets []target, modified []imap.UID, isUID bool) error {
	if isUID {
		return imapserver.ModifiedError(mailstore.UIDSetOf(modified))
	}
	in := make(map[imap.UID]bool, len(modified))
	for _, u := range modified {
		in[u] = true
	}
	var seqs imap.SeqSet
	for _, t := range targets {
		if in[t.uid] {
			seqs.AddNum(t.seq)
		}
	}
	return imapserver.ModifiedError(seqs)
}

// hasModSeq reports whether criteria use MODSEQ at any depth.
func hasModSeq(c *imap.SearchCriteria) bool {
	if c.ModSeq != nil {
		return true
	}
	for i := range c.Not {
		if hasModSeq(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if hasModSeq(&c.Or[i][0]) || hasModSeq(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

// searchModSeq is the (MODSEQ n) of a SEARCH with MODSEQ (RFC 7162
// §3.1.5): the highest modseq of the messages returned, which for an
// ESEARCH asking only MIN and/or MAX are those messages alone (RFC 4731
// §3.2, as imaptest's esearch-condstore expects). found is ascending.
func (s *session) searchModSeq(found []imap.UID, options *imap.SearchOptions) (uint64, error) {
	set := mailstore.UIDSetOf(found)
	if !options.ReturnAll && !options.ReturnCount && !options.ReturnSave {
		set = nil
		if options.ReturnMin {
			set.AddNum(found[0])
		}
		if options.ReturnMax {
			set.AddNum(found[len(found)-1])
		}
	}
	ctx, cancel := s.op()
	rows, err := s.acct.Fetch(ctx, s.sel.mailbox.ID, set, mailstore.FetchOptions{})
	cancel()
	if err != nil {
		return 0, mapError(s.log, "search", err, errSource)
	}
	var m uint64
	for _, r := range rows {
		m = max(m, r.ModSeq)
	}
	return m, nil
}
