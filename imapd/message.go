package imapd

import (
	"context"
	"errors"
	"io"
	"sort"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// fetchBatch is how many messages one FETCH reads from the index at a time:
// it bounds memory on huge mailboxes and lets the first responses go out
// early.
const fetchBatch = 1000

// target is one message a command addresses: its sequence number as the
// client knows it and its UID.
type target struct {
	seq uint32
	uid imap.UID
}

// noUID stands for "no message": a UID set that can match nothing in a store
// search (UIDs are at most 2^32-1 and never reach it in practice).
var noUID = imap.UIDSet{{Start: 4294967295, Stop: 4294967295}}

// resolve turns a client's sequence or UID set into the messages it names,
// ascending and without duplicates. Sequence numbers go through the
// session's tracker (client view → server view) and "*" means the last
// message the client knows; messages the client has not been told about yet,
// or that are already expunged, are left out.
func (sel *selected) resolve(numSet imap.NumSet) []target {
	st := sel.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if imap.IsSearchRes(numSet) {
		numSet = sel.searchRes
	}
	var out []target
	switch set := numSet.(type) {
	case imap.SeqSet:
		clientMax := sel.clientMaxLocked()
		for _, r := range set {
			lo, hi := mailstore.RangeBounds(r.Start, r.Stop, clientMax)
			hi = min(hi, clientMax)
			for c := lo; c >= 1 && c <= hi; c++ {
				srv := sel.tracker.DecodeSeqNum(c)
				if srv == 0 || int(srv) > len(st.uids) {
					continue
				}
				out = append(out, target{seq: c, uid: st.uids[srv-1]})
			}
		}
	case imap.UIDSet:
		maxUID := st.uidNext - 1
		if n := len(st.uids); n > 0 {
			maxUID = st.uids[n-1]
		}
		for _, r := range set {
			lo, hi := mailstore.RangeBounds(r.Start, r.Stop, maxUID)
			i := sort.Search(len(st.uids), func(i int) bool { return st.uids[i] >= lo })
			for ; i < len(st.uids) && st.uids[i] <= hi; i++ {
				c := sel.tracker.EncodeSeqNum(uint32(i + 1))
				if c == 0 {
					continue
				}
				out = append(out, target{seq: c, uid: st.uids[i]})
			}
		}
	}
	if numRanges(numSet) > 1 {
		sort.Slice(out, func(i, j int) bool { return out[i].uid < out[j].uid })
		out = dedupe(out)
	}
	return out
}

func numRanges(numSet imap.NumSet) int {
	switch s := numSet.(type) {
	case imap.SeqSet:
		return len(s)
	case imap.UIDSet:
		return len(s)
	}
	return 0
}

func dedupe(ts []target) []target {
	out := ts[:0]
	for i, t := range ts {
		if i > 0 && t.uid == ts[i-1].uid {
			continue
		}
		out = append(out, t)
	}
	return out
}

// checkSeqSet refuses sequence numbers the client cannot know: RFC 9051
// §9 (seq-number) asks for BAD on a number greater than the messages in the
// mailbox as the client was told (its last EXISTS), including "*" in a
// mailbox it knows as empty. FETCH, STORE, COPY and MOVE check; SEARCH does
// not (a search key naming no message matches nothing), nor do UID commands.
func (sel *selected) checkSeqSet(numSet imap.NumSet) error {
	set, ok := numSet.(imap.SeqSet)
	if !ok {
		return nil
	}
	n := sel.tracker.NumMessages()
	for _, r := range set {
		if n == 0 || r.Start > n || r.Stop > n {
			return errBadSeqSet
		}
	}
	return nil
}

// clientMaxLocked is the highest sequence number the client knows of a
// message that still exists.
func (sel *selected) clientMaxLocked() uint32 {
	if n := sel.knownLocked(); n > 0 {
		return sel.tracker.EncodeSeqNum(uint32(n))
	}
	return 0
}

// uidSetOf is the compact UID set of targets in ascending UID order.
func uidSetOf(ts []target) imap.UIDSet {
	return mailstore.UIDSetBy(ts, func(t target) imap.UID { return t.uid })
}

// --- FETCH ---

func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	sel := s.sel
	if err := sel.checkSeqSet(numSet); err != nil {
		return err
	}
	targets := sel.resolve(numSet)
	if options.Vanished {
		// RFC 7162 §3.2.6: before the FETCH responses.
		if err := s.writeVanished(w, numSet, options.ChangedSince); err != nil {
			return err
		}
	}
	if options.ChangedSince > 0 && len(targets) > 0 {
		var err error
		if targets, err = s.changedTargets(targets, options.ChangedSince); err != nil {
			return err
		}
	}
	if len(targets) == 0 {
		return nil
	}
	caps := s.conn.EnabledCaps()
	condStore, qResync := caps.Has(imap.CapCondStore), caps.Has(imap.CapQResync)

	// RFC 9051 §6.4.5: fetching a body section without .PEEK sets \Seen,
	// except on a read-only selection.
	markSeen := false
	if !sel.readOnly {
		for _, bs := range options.BodySection {
			markSeen = markSeen || !bs.Peek
		}
		for _, bs := range options.BinarySection {
			markSeen = markSeen || !bs.Peek
		}
	}
	needFile := len(options.BodySection) > 0 || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0
	fo := mailstore.FetchOptions{Envelope: options.Envelope, BodyStructure: options.BodyStructure != nil, EmailID: options.EmailID,
		SummaryOnly: summaryOnly(options)}
	writeFlags := options.Flags || markSeen
	// Once CONDSTORE is on, a FETCH that shows flags shows their modseq
	// (RFC 7162 §3.1.4.1, as Dovecot does); after QRESYNC every FETCH
	// response carries the UID (§3.2.4).
	fetchOpts := *options
	fetchOpts.ModSeq = options.ModSeq || condStore && writeFlags
	fetchOpts.UID = options.UID || qResync
	options = &fetchOpts

	for len(targets) > 0 {
		batch := targets[:min(fetchBatch, len(targets))]
		targets = targets[len(batch):]
		uids := uidSetOf(batch)

		ctx, cancel := s.op()
		if markSeen {
			if _, err := s.storeFlags(ctx, uids, mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen}); err != nil {
				cancel()
				return mapError(s.log, "fetch", err, errSource)
			}
		}
		rows, err := s.acct.Fetch(ctx, sel.mailbox.ID, uids, fo)
		cancel()
		if err != nil {
			return mapError(s.log, "fetch", err, errSource)
		}

		if writeFlags {
			if err := sel.announceKeywords(w, rows); err != nil {
				return err
			}
		}
		j := 0
		for _, t := range batch {
			for j < len(rows) && rows[j].UID < t.uid {
				j++
			}
			if j == len(rows) {
				break
			}
			if rows[j].UID != t.uid {
				continue // expunged meanwhile: RFC 9051 lets us leave it out
			}
			if err := s.fetchOne(w, t, &rows[j], options, writeFlags, needFile); err != nil {
				return err
			}
		}
		if writeFlags || options.ModSeq {
			sel.shownRows(rows, writeFlags)
		}
	}
	return nil
}

// summaryOnly reports whether a FETCH shows nothing but UID, FLAGS and
// MODSEQ (and THREADID, always NIL), which the store answers from its
// mailbox list instead of a row per message.
func summaryOnly(o *imap.FetchOptions) bool {
	return o.BodyStructure == nil && !o.Envelope && !o.InternalDate && !o.RFC822Size &&
		len(o.BodySection) == 0 && len(o.BinarySection) == 0 && len(o.BinarySectionSize) == 0 && !o.EmailID
}

// fetchOne writes one FETCH response. Sections are located (and BINARY
// lengths counted) before the response starts; their bytes are then
// streamed from the message file by mimeparse, which reads any message
// within its bounds. No store lock is held here.
func (s *session) fetchOne(w *imapserver.FetchWriter, t target, row *mailstore.MessageInfo,
	options *imap.FetchOptions, writeFlags, needFile bool) error {
	bodyStructure := row.BodyStructure
	reparse := options.BodyStructure != nil && !isExtended(bodyStructure)
	var msg *mimeparse.Message
	if needFile || reparse {
		ctx, cancel := s.op()
		f, size, err := s.acct.OpenMessage(ctx, s.sel.mailbox.ID, row.UID)
		cancel()
		if err != nil {
			if errors.Is(err, mailstore.ErrNoSuchMessage) {
				return nil
			}
			return mapError(s.log, "fetch", err, errSource)
		}
		defer f.Close()
		msg = mimeparse.NewMessage(f, size)
	}
	if reparse {
		// go-imap cannot write BODYSTRUCTURE without extension data;
		// build it from the message when the index lacks it.
		root, err := msg.Structure()
		if err != nil {
			return mapError(s.log, "fetch", err, errSource)
		}
		bodyStructure = root.BodyStructure()
	}

	type section struct {
		body   *imap.FetchItemBodySection
		binary *imap.FetchItemBinarySection
		sec    *mimeparse.Section // nil: no such part, an empty string
	}
	sections := make([]section, 0, len(options.BodySection)+len(options.BinarySection))
	for _, bs := range options.BodySection {
		sec, err := msg.BodySection(bs)
		if err != nil && !errors.Is(err, mimeparse.ErrNotFound) {
			return mapError(s.log, "fetch", err, errSource)
		}
		sections = append(sections, section{body: bs, sec: sec})
	}
	for _, bs := range options.BinarySection {
		sec, err := msg.BinarySection(bs.Part, bs.Partial)
		if errors.Is(err, mimeparse.ErrUnknownCTE) {
			return errUnknownCTE
		}
		if err != nil && !errors.Is(err, mimeparse.ErrNotFound) {
			return mapError(s.log, "fetch", err, errSource)
		}
		sections = append(sections, section{binary: bs, sec: sec})
	}
	binarySizes := make([]uint32, len(options.BinarySectionSize))
	for i, bs := range options.BinarySectionSize {
		n, err := msg.BinarySize(bs.Part)
		if errors.Is(err, mimeparse.ErrUnknownCTE) {
			return errUnknownCTE
		}
		if err != nil && !errors.Is(err, mimeparse.ErrNotFound) {
			return mapError(s.log, "fetch", err, errSource)
		}
		binarySizes[i] = uint32(n)
	}

	rw := w.CreateMessage(t.seq)
	if options.UID {
		rw.WriteUID(row.UID)
	}
	if writeFlags {
		rw.WriteFlags(s.sel.withRecent(row.UID, row.Flags))
	}
	if options.ModSeq {
		rw.WriteModSeq(row.ModSeq)
	}
	if options.InternalDate {
		rw.WriteInternalDate(row.InternalDate)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(row.Size)
	}
	if options.Envelope {
		rw.WriteEnvelope(row.Envelope)
	}
	if options.BodyStructure != nil {
		rw.WriteBodyStructure(bodyStructure)
	}
	if options.EmailID {
		rw.WriteEmailID(row.EmailID)
	}
	if options.ThreadID {
		rw.WriteThreadID("") // NIL: no threads (RFC 8474 §5.2)
	}
	var werr error
	for _, sec := range sections {
		var size int64
		if sec.sec != nil {
			size = sec.sec.Size
		}
		var lw io.WriteCloser
		if sec.body != nil {
			lw = rw.WriteBodySection(sec.body, size)
		} else {
			lw = rw.WriteBinarySection(sec.binary, size)
		}
		if sec.sec != nil {
			if _, err := sec.sec.WriteTo(lw); err != nil && werr == nil {
				// The literal's length is already on the wire: the
				// only safe way out is to drop the connection.
				werr = err
			}
		}
		if err := lw.Close(); err != nil && werr == nil {
			werr = err
		}
	}
	for i, bs := range options.BinarySectionSize {
		rw.WriteBinarySectionSize(bs, binarySizes[i])
	}
	if err := rw.Close(); err != nil && werr == nil {
		werr = err
	}
	if werr != nil {
		s.log.Warn("fetch write failed, closing", "err", werr)
		s.conn.NetConn().Close()
		return werr
	}
	return nil
}

// errUnknownCTE answers a BINARY fetch of a part that does not decode
// (RFC 3516 §4.3).
var errUnknownCTE = no(imap.ResponseCodeUnknownCTE, "Cannot decode this part's transfer encoding")

func isExtended(bs imap.BodyStructure) bool {
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		return bs.Extended != nil
	case *imap.BodyStructureMultiPart:
		return bs.Extended != nil
	}
	return false
}

// --- STORE ---

// storeFlags calls StoreFlags with the session marked as the source of the
// resulting flag events, so its own tracker does not echo them.
func (s *session) storeFlags(ctx context.Context, uids imap.UIDSet, op mailstore.FlagOp, flags []imap.Flag) (mailstore.StoreResult, error) {
	return s.storeFlagsIf(ctx, uids, op, flags, 0)
}

// storeFlagsIf is storeFlags with CONDSTORE's UNCHANGEDSINCE (0: none).
func (s *session) storeFlagsIf(ctx context.Context, uids imap.UIDSet, op mailstore.FlagOp, flags []imap.Flag, unchangedSince uint64) (mailstore.StoreResult, error) {
	sel := s.sel
	in := &inflightStore{tracker: sel.tracker, uids: uids}
	sel.st.beginStore(in)
	defer sel.st.endStore(in)
	return s.acct.StoreFlags(ctx, sel.mailbox.ID, uids, op, flags, unchangedSince)
}

func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	sel := s.sel
	if sel.readOnly {
		return errReadOnly
	}
	var op mailstore.FlagOp
	switch flags.Op {
	case imap.StoreFlagsAdd:
		op = mailstore.FlagsAdd
	case imap.StoreFlagsDel:
		op = mailstore.FlagsRemove
	default:
		op = mailstore.FlagsSet
	}
	if err := sel.checkSeqSet(numSet); err != nil {
		return err
	}
	targets := sel.resolve(numSet)
	if len(targets) == 0 {
		return nil
	}
	_, isUID := numSet.(imap.UIDSet)
	st := sel.st
	st.mu.Lock()
	known := len(st.keywords)
	before := st.modseq
	st.mu.Unlock()
	var res mailstore.StoreResult
	if options != nil && options.Conditional && options.UnchangedSince == 0 {
		// RFC 7162 §3.1.3: UNCHANGEDSINCE 0 fails for every message.
		for _, t := range targets {
			res.Modified = append(res.Modified, t.uid)
		}
	} else {
		var unchangedSince uint64
		if options != nil {
			unchangedSince = options.UnchangedSince
		}
		ctx, cancel := s.op()
		var err error
		res, err = s.storeFlagsIf(ctx, uidSetOf(targets), op, storableFlags(flags.Flags), unchangedSince)
		cancel()
		if err != nil {
			return mapError(s.log, "store", err, errSource)
		}
	}
	// The store's events have added any new keyword to the mailbox's
	// FLAGS; a FETCH below must not show one before FLAGS lists it.
	st.mu.Lock()
	var announce []imap.Flag
	if len(st.keywords) > known {
		announce = st.flagsLocked()
		// Newer than a FLAGS queued for this session by another's new
		// keyword (under st.mu, so no later one is queued meanwhile):
		// written after it, that older list would drop this STORE's
		// keyword.
		sel.tracker.TakeMailboxFlags()
	}
	st.mu.Unlock()
	if announce != nil {
		if err := w.WriteMailboxFlags(announce); err != nil {
			return err
		}
	}
	if err := s.writeStored(w, targets, res, flags.Silent, isUID, before); err != nil {
		return err
	}
	sel.shownStored(res, !flags.Silent)
	if len(res.Modified) > 0 {
		return modifiedError(targets, res.Modified, isUID)
	}
	return nil
}

// writeStored writes STORE's FETCH responses: FLAGS of every message it
// reached (none with .SILENT) and, once CONDSTORE is on, MODSEQ, which
// RFC 7162 §3.1.3 sends even with .SILENT for the messages whose flags
// changed (a modseq above before, the mailbox's before the STORE). After
// QRESYNC each carries the UID (§3.2.4).
func (s *session) writeStored(w *imapserver.FetchWriter, targets []target, res mailstore.StoreResult, silent, isUID bool, before uint64) error {
	caps := s.conn.EnabledCaps()
	condStore, qResync := caps.Has(imap.CapCondStore), caps.Has(imap.CapQResync)
	if silent && !condStore {
		return nil
	}
	updated := make(map[imap.UID]mailstore.FlagUpdate, len(res.Updated))
	for _, u := range res.Updated {
		updated[u.UID] = u
	}
	for _, t := range targets {
		u, ok := updated[t.uid]
		if !ok || silent && u.ModSeq <= before {
			continue
		}
		rw := w.CreateMessage(t.seq)
		if isUID || qResync {
			rw.WriteUID(t.uid)
		}
		if !silent {
			rw.WriteFlags(s.sel.withRecent(t.uid, u.Flags))
		}
		if condStore {
			rw.WriteModSeq(u.ModSeq)
		}
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// --- SEARCH ---

func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	sel := s.sel
	withModSeq := hasModSeq(criteria)
	if options.ReturnUpdate {
		if err := sel.checkLiveTag(options.Tag); err != nil {
			return nil, err
		}
	}
	ctx, cancel := s.op()
	ts, err := s.matching(ctx, criteria)
	cancel()
	if err != nil {
		return nil, err
	}

	var (
		data   imap.SearchData
		seqSet imap.SeqSet
		found  = make([]imap.UID, len(ts))
	)
	for i, t := range ts {
		found[i] = t.uid
		num := uint32(t.uid)
		if kind == imapserver.NumKindSeq {
			num = t.seq
			seqSet.AddNum(t.seq)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		if num > data.Max {
			data.Max = num
		}
		data.Count++
	}
	st := sel.st

	uidSet := mailstore.UIDSetOf(found)
	if kind == imapserver.NumKindSeq {
		data.All = seqSet
	} else {
		data.All = uidSet
	}
	saved := uidSet
	if r := options.ReturnPartial; r != nil {
		// RFC 9394 §3.1: positions in the result, ascending.
		nums := make([]uint32, len(found))
		for i, uid := range found {
			nums[i] = uint32(uid)
		}
		part := partialResult(nums, *r)
		partUIDs := make([]imap.UID, len(part))
		for i, n := range part {
			partUIDs[i] = imap.UID(n)
		}
		saved = mailstore.UIDSetOf(partUIDs)
		data.Partial = &imap.SearchPartialData{Range: *r}
		if len(part) > 0 {
			if kind == imapserver.NumKindSeq {
				var ss imap.SeqSet
				st.mu.Lock()
				for _, uid := range partUIDs {
					ss.AddNum(sel.clientSeqLocked(uid))
				}
				st.mu.Unlock()
				data.Partial.All = ss
			} else {
				data.Partial.All = saved
			}
		}
	}
	if options.ReturnSave {
		// RFC 9394 §3.2: with PARTIAL, "$" is the partial result.
		sel.searchRes = saved
	}
	if options.ReturnUpdate {
		ls := &liveSearch{tag: options.Tag, kind: kind, criteria: criteria, result: uidSet}
		data.NoUpdate = !sel.addLiveSearch(ls)
	}
	if withModSeq && len(found) > 0 {
		var err error
		if data.ModSeq, err = s.searchModSeq(found, options); err != nil {
			return nil, err
		}
	}
	return &data, nil
}

// staticCriteria rewrites criteria in UIDs only, as mailstore.Search wants:
// sequence sets (at any depth) become the UIDs they name for this client,
// "$" becomes the saved result, "*" the last UID, and \Recent (RECENT, NEW,
// OLD) this session's recent UIDs.
func (sel *selected) staticCriteria(c *imap.SearchCriteria) error {
	sel.rewriteRecent(c)
	for _, seqs := range c.SeqNum {
		ts := sel.resolve(seqs)
		if len(ts) == 0 {
			c.UID = append(c.UID, noUID)
		} else {
			c.UID = append(c.UID, uidSetOf(ts))
		}
	}
	c.SeqNum = nil
	for i, uids := range c.UID {
		if imap.IsSearchRes(uids) || uids.Dynamic() {
			ts := sel.resolve(uids)
			if len(ts) == 0 {
				c.UID[i] = noUID
			} else {
				c.UID[i] = uidSetOf(ts)
			}
		}
	}
	for i := range c.Not {
		if err := sel.staticCriteria(&c.Not[i]); err != nil {
			return err
		}
	}
	for i := range c.Or {
		for j := range c.Or[i] {
			if err := sel.staticCriteria(&c.Or[i][j]); err != nil {
				return err
			}
		}
	}
	return nil
}

// --- EXPUNGE, COPY, MOVE ---

// Expunge removes \Deleted messages. It writes nothing itself: the expunge
// events reach every session's tracker, ours included, and the library's
// post-command poll writes the EXPUNGE responses (one path only).
func (s *session) Expunge(_ *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	sel := s.sel
	if sel.readOnly {
		return errReadOnly
	}
	var set *imap.UIDSet
	if uids != nil {
		ts := sel.resolve(*uids)
		if len(ts) == 0 {
			return nil
		}
		u := uidSetOf(ts)
		set = &u
	}
	ctx, cancel := s.op()
	defer cancel()
	gone, err := s.acct.Expunge(ctx, sel.mailbox.ID, set)
	if err != nil {
		return mapError(s.log, "expunge", err, errSource)
	}
	sel.st.waitGone(ctx, gone)
	return nil
}

func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	dest = canonName(dest)
	if err := checkName(dest); err != nil {
		return nil, err
	}
	if err := s.sel.checkSeqSet(numSet); err != nil {
		return nil, err
	}
	targets := s.sel.resolve(numSet)
	if len(targets) == 0 {
		// Nothing to copy; still check the destination for TRYCREATE.
		ctx, cancel := s.op()
		defer cancel()
		if _, err := s.acct.Mailbox(ctx, dest); err != nil {
			return nil, mapError(s.log, "copy", err, errDest)
		}
		return nil, nil
	}
	ctx, cancel := s.op()
	defer cancel()
	res, err := s.acct.Copy(ctx, s.sel.mailbox.ID, uidSetOf(targets), dest)
	if err != nil {
		return nil, mapError(s.log, "copy", err, errDest)
	}
	return copyData(res), nil
}

func copyData(res mailstore.CopyResult) *imap.CopyData {
	var src, dst imap.UIDSet
	src.AddNum(res.SourceUIDs...)
	dst.AddNum(res.DestUIDs...)
	return &imap.CopyData{UIDValidity: res.DestUIDValidity, SourceUIDs: src, DestUIDs: dst}
}

// Move writes the COPYUID response itself (RFC 6851 §4.3: before the
// EXPUNGEs), then waits for the source's expunge events so the library's
// post-command poll writes the EXPUNGE responses, once.
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	sel := s.sel
	if sel.readOnly {
		return errReadOnly
	}
	dest = canonName(dest)
	if err := checkName(dest); err != nil {
		return err
	}
	if err := sel.checkSeqSet(numSet); err != nil {
		return err
	}
	targets := sel.resolve(numSet)
	ctx, cancel := s.op()
	defer cancel()
	if len(targets) == 0 {
		if _, err := s.acct.Mailbox(ctx, dest); err != nil {
			return mapError(s.log, "move", err, errDest)
		}
		return nil
	}
	res, err := s.acct.Move(ctx, sel.mailbox.ID, uidSetOf(targets), dest)
	if err != nil {
		return mapError(s.log, "move", err, errDest)
	}
	if err := w.WriteCopyData(copyData(res)); err != nil {
		return err
	}
	sel.st.waitGone(ctx, res.SourceUIDs)
	return nil
}
