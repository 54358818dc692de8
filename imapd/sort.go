package imapd

import (
	"bufio"
	"context"
	"errors"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/posthouse/posthouse/imapd/mailsort"
	"github.com/posthouse/posthouse/mailstore"
)

var (
	_ imapserver.SessionSort        = (*session)(nil)
	_ imapserver.SessionSortContext = (*session)(nil)
	_ imapserver.SessionThread      = (*session)(nil)
)

// matching runs a SEARCH for SEARCH, SORT and THREAD: the messages
// matching criteria that the client knows, in sequence order. criteria is
// made static (staticCriteria) in place, as a live result keeps it.
func (s *session) matching(ctx context.Context, criteria *imap.SearchCriteria) ([]target, error) {
	sel := s.sel
	if err := sel.staticCriteria(criteria); err != nil {
		return nil, err
	}
	uids, err := s.acct.Search(ctx, sel.mailbox.ID, criteria)
	if err != nil {
		return nil, mapError(s.log, "search", err, errSource)
	}
	ts := make([]target, 0, len(uids))
	st := sel.st
	st.mu.Lock()
	for _, uid := range uids {
		if c := sel.clientSeqLocked(uid); c != 0 {
			ts = append(ts, target{seq: c, uid: uid})
		}
	}
	st.mu.Unlock()
	return ts, nil
}

// eachRow calls fn with the index row of every target, in order, reading
// the index fetchBatch rows at a time so that only the keys fn keeps stay
// in memory. Targets whose row is gone (expunged meanwhile) are skipped.
func (s *session) eachRow(ctx context.Context, ts []target, opts mailstore.FetchOptions, fn func(t target, row *mailstore.MessageInfo) error) error {
	for len(ts) > 0 {
		batch := ts[:min(len(ts), fetchBatch)]
		ts = ts[len(batch):]
		uids := make([]imap.UID, len(batch))
		for i, t := range batch {
			uids[i] = t.uid
		}
		rows, err := s.acct.Fetch(ctx, s.sel.mailbox.ID, mailstore.UIDSetOf(uids), opts)
		if err != nil {
			return mapError(s.log, "sort", err, errSource)
		}
		// Rows come in ascending UID order, as do the targets.
		j := 0
		for _, t := range batch {
			for j < len(rows) && rows[j].UID < t.uid {
				j++
			}
			if j == len(rows) || rows[j].UID != t.uid {
				continue
			}
			if err := fn(t, &rows[j]); err != nil {
				return err
			}
		}
	}
	return nil
}

func num(kind imapserver.NumKind, t target) uint32 {
	if kind == imapserver.NumKindUID {
		return uint32(t.uid)
	}
	return t.seq
}

// keyMaker builds the mailsort.Keys of sort criteria from index rows,
// filling only the keys the criteria use.
type keyMaker struct {
	criteria []imap.SortCriterion
	uses     map[imap.SortKey]bool
}

func newKeyMaker(criteria []imap.SortCriterion) keyMaker {
	uses := make(map[imap.SortKey]bool, len(criteria))
	for _, c := range criteria {
		uses[c.Key] = true
	}
	return keyMaker{criteria: criteria, uses: uses}
}

// fetchOptions are the index parts the keys come from: the cached
// envelope, when a key needs it; never the message files.
func (km keyMaker) fetchOptions() mailstore.FetchOptions {
	return mailstore.FetchOptions{Envelope: mailsort.NeedsEnvelope(km.criteria)}
}

// key is the message's key, naming it num. Its Seq, the last tie-breaker,
// is the UID: the same order as sequence numbers, and still valid after
// expunges, as a live result needs.
func (km keyMaker) key(num uint32, uid imap.UID, row *mailstore.MessageInfo) mailsort.Key {
	k := mailsort.Key{Num: num, Seq: uint32(uid), Arrival: row.InternalDate.Unix(), Size: row.Size}
	env := row.Envelope
	if env == nil {
		env = &imap.Envelope{}
	}
	if km.uses[imap.SortKeyDate] {
		k.Date = mailsort.SentDate(env.Date, row.InternalDate)
	}
	if km.uses[imap.SortKeySubject] {
		k.Subject, _ = mailsort.BaseSubject(env.Subject)
	}
	if km.uses[imap.SortKeyFrom] {
		k.From = mailsort.AddrKey(env.From)
	}
	if km.uses[imap.SortKeyTo] {
		k.To = mailsort.AddrKey(env.To)
	}
	if km.uses[imap.SortKeyCc] {
		k.Cc = mailsort.AddrKey(env.Cc)
	}
	if km.uses[imap.SortKeyDisplayFrom] {
		k.DisplayFrom = mailsort.DisplayKey(env.From)
	}
	if km.uses[imap.SortKeyDisplayTo] {
		k.DisplayTo = mailsort.DisplayKey(env.To)
	}
	return k
}

// sortedKeys runs the search and returns one key per matching message, in
// sort order.
func (s *session) sortedKeys(kind imapserver.NumKind, km keyMaker, criteria *imap.SearchCriteria) ([]mailsort.Key, error) {
	ctx, cancel := s.op()
	defer cancel()
	ts, err := s.matching(ctx, criteria)
	if err != nil {
		return nil, err
	}
	keys := make([]mailsort.Key, 0, len(ts))
	err = s.eachRow(ctx, ts, km.fetchOptions(), func(t target, row *mailstore.MessageInfo) error {
		keys = append(keys, km.key(num(kind, t), t.uid, row))
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(keys, func(a, b mailsort.Key) int { return mailsort.Compare(&a, &b, km.criteria) })
	return keys, nil
}

func keyNums(keys []mailsort.Key) []uint32 {
	nums := make([]uint32, len(keys))
	for i := range keys {
		nums[i] = keys[i].Num
	}
	return nums
}

// Sort is SORT (RFC 5256 §3, RFC 5957): one mailsort.Key per matching
// message, with only the keys the criteria use, built from the index.
func (s *session) Sort(kind imapserver.NumKind, sortCriteria []imap.SortCriterion, criteria *imap.SearchCriteria) ([]uint32, error) {
	keys, err := s.sortedKeys(kind, newKeyMaker(sortCriteria), criteria)
	if err != nil {
		return nil, err
	}
	return keyNums(keys), nil
}

// SortUpdate is SORT RETURN (UPDATE) (RFC 5267 §4.3): Sort, and the result
// stays live (sortctx.go) unless the session has too many or it is too
// large, which noUpdate reports.
func (s *session) SortUpdate(tag string, kind imapserver.NumKind, sortCriteria []imap.SortCriterion, criteria *imap.SearchCriteria) ([]uint32, bool, error) {
	if err := s.sel.checkLiveTag(tag); err != nil {
		return nil, false, err
	}
	km := newKeyMaker(sortCriteria)
	keys, err := s.sortedKeys(kind, km, criteria)
	if err != nil {
		return nil, false, err
	}
	nums := keyNums(keys)
	sr, ok := newSortedResult(km, keys)
	if !ok {
		return nums, true, nil
	}
	ls := &liveSearch{tag: tag, kind: kind, criteria: criteria, result: sr.uidSet(), sorted: sr}
	return nums, !s.sel.addLiveSearch(ls), nil
}

// Thread is THREAD (RFC 5256 §3). Subjects and sent dates come from the
// cached envelope. REFERENCES also needs Message-ID, In-Reply-To and
// References as written; the index does not keep References, so each
// message's header is read from its file (bounded, by
// mailsort.ReadThreadFields) and only the IDs are kept.
func (s *session) Thread(kind imapserver.NumKind, alg imap.ThreadAlgorithm, criteria *imap.SearchCriteria) ([]imap.ThreadData, error) {
	ctx, cancel := s.op()
	defer cancel()
	ts, err := s.matching(ctx, criteria)
	if err != nil {
		return nil, err
	}
	refs := alg == imap.ThreadReferences
	msgs := make([]mailsort.Message, 0, len(ts))
	br := bufio.NewReaderSize(nil, 16<<10)
	err = s.eachRow(ctx, ts, mailstore.FetchOptions{Envelope: true}, func(t target, row *mailstore.MessageInfo) error {
		m := mailsort.Message{Num: num(kind, t)}
		if env := row.Envelope; env != nil {
			m.Date = mailsort.SentDate(env.Date, row.InternalDate)
			m.Subject, m.ReplyOrFwd = mailsort.BaseSubject(env.Subject)
		} else {
			m.Date = row.InternalDate.Unix()
		}
		if refs {
			if err := s.readThreadIDs(ctx, br, t.uid, &m); err != nil {
				return err
			}
		}
		msgs = append(msgs, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if refs {
		return mailsort.References(msgs), nil
	}
	return mailsort.OrderedSubject(msgs), nil
}

// readThreadIDs fills m's Message-ID and references from the message's
// header. A message that vanished meanwhile keeps none.
func (s *session) readThreadIDs(ctx context.Context, br *bufio.Reader, uid imap.UID, m *mailsort.Message) error {
	f, _, err := s.acct.OpenMessage(ctx, s.sel.mailbox.ID, uid)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, mailstore.ErrNoSuchMessage) {
			return nil
		}
		return mapError(s.log, "thread", err, errSource)
	}
	defer f.Close()
	br.Reset(f)
	h, err := mailsort.ReadThreadFields(br)
	if err != nil {
		return mapError(s.log, "thread", err, errSource)
	}
	m.MessageID = mailsort.FirstMsgID(h.MessageID)
	m.References = mailsort.MsgIDs(h.References)
	if len(m.References) == 0 {
		if id := mailsort.FirstMsgID(h.InReplyTo); id != "" {
			m.References = []string{id}
		}
	}
	return nil
}
